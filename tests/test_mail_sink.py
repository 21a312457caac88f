"""The local mail sink of scripts/run, as a real process: messages saved as private .eml files, one line each."""

from __future__ import annotations

import signal
import smtplib
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import free_port


def wait_until_listening(port: int, process: subprocess.Popen[str], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the sink exited early: {process.stderr.read() if process.stderr else ''}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the sink did not listen on port {port} within {seconds} s")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    port, mail_dir = free_port(), tmp_path / "mail"
    process = subprocess.Popen(
        [sys.executable, "-m", "ivr.simulator.mail_sink", "--dir", str(mail_dir), "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        wait_until_listening(port, process)
        yield process, port, mail_dir
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def message(subject: str, body: str, to: str, cc: str | None = None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "assistenza@example.com"
    mail["To"] = to
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail.set_content(body)
    return mail


def test_sink_saves_private_eml_files_and_prints_one_line_per_message(
    sink: tuple[subprocess.Popen[str], int, Path],
) -> None:
    process, port, mail_dir = sink
    first = message(
        "Richiesta 1000015 aperta — perché è tutto fermo", "Buongiorno,\nè tutto a posto.", "giulia@example.it"
    )
    second = message(
        "Nuovo ticket 1000016",
        "Ticket: 1000016\n",
        "giulia.rossi@brambilla.example.it",
        cc="Marco Bianchi <marco.bianchi@brambilla.example.it>, anna@studioverdi.example.it",
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(first)
        client.send_message(second)

    process.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("the sink did not stop within 5 s of SIGTERM")
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr

    lines = stdout.splitlines()
    assert lines == [
        "mail: to giulia@example.it — Richiesta 1000015 aperta — perché è tutto fermo",
        "mail: to giulia.rossi@brambilla.example.it cc marco.bianchi@brambilla.example.it, anna@studioverdi.example.it"
        " — Nuovo ticket 1000016",
    ]

    files = sorted(mail_dir.glob("*.eml"))
    assert len(files) == 2
    assert sorted(p.name for p in mail_dir.iterdir()) == [p.name for p in files], "no temporary files are left"
    saved = [message_from_bytes(path.read_bytes(), policy=policy.default) for path in files]
    by_subject = {str(m["Subject"]): m for m in saved}
    for sent in (first, second):
        got = by_subject[str(sent["Subject"])]
        assert got["To"] == sent["To"]
        assert got["Cc"] == sent["Cc"]
        assert got.get_content() == sent.get_content()
    assert by_subject[str(second["Subject"])]["X-RcptTo"] == (
        "giulia.rossi@brambilla.example.it, marco.bianchi@brambilla.example.it, anna@studioverdi.example.it"
    )
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
