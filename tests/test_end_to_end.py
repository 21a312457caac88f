"""A phone call all the way to the emails: real Redis, a real RQ worker process, real audio,
real transcription, a real SMTP server. And the same with parts broken on the way."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from helpdesk import thread
from ivr.settings import Settings
from ivr.simulator.media import RecordingServer
from storage.models import PendingWork, Ticket, User
from tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    DISPATCH,
    GIULIA,
    STRANGER,
    free_port,
    phone_audio,
    worker_environment,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("directory")]

_TOOLS_PRESENT = shutil.which("espeak-ng") and shutil.which("sox") and shutil.which("redis-server")
if not _TOOLS_PRESENT and not os.environ.get("CI"):  # in CI, scripts/setup installed them: fail rather than skip
    pytest.skip("needs espeak-ng, sox and redis-server (scripts/setup installs them)", allow_module_level=True)

PROJECT = Path(__file__).resolve().parent.parent
TECHNICIAN = "luca.ferrari@helpdesk.example.it"


class PrivateRedis:
    """A redis-server of the test's own, so it can be stopped and started again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if Redis.from_url(self.url).ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path: Path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


class WorkerProcess:
    """`python -m ivr.worker` (RQ worker + relay) configured by the environment alone."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ivr.worker"],
            cwd=PROJECT,
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )

    def kill_hard(self) -> None:
        """kill -9 of the worker, its work horse and its relay: the whole process group."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def line(request, app, settings: Settings, redis_server, recordings, smtp_sink, model_cache, tmp_path):
    """The whole line: the app (in the test), plus a worker process sharing its settings.

    A test marked `smtp_down` gets a worker whose SMTP server never answers.
    """
    smtp_port = free_port() if request.node.get_closest_marker("smtp_down") else smtp_sink.port
    env = worker_environment(
        settings,
        recordings,
        REDIS_URL=redis_server.url,
        MODEL_CACHE_DIR=str(model_cache),
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_port),
        MAIL_FROM="assistenza@helpdesk.example.it",
        DISPATCH_EMAIL=DISPATCH,
        RELAY_INTERVAL="0.5",
        LEASE_SECONDS="30",
        RETRY_INTERVALS="2,4",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    yield Line(app, worker, recordings, smtp_sink, redis_server, tmp_path)
    worker.stop()


class Line:
    def __init__(self, app, worker, recordings, smtp, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
        self.app, self.worker, self.recordings, self.smtp, self.redis, self.tmp = (
            app,
            worker,
            recordings,
            smtp,
            redis,
            tmp_path,
        )

    def ticket(self) -> Ticket:
        with self.app.config["SESSIONMAKER"]() as session:
            ticket = session.scalars(select(Ticket).order_by(Ticket.id)).first()
            _ = ticket.events
            return ticket

    def wait_until_followed_up(self, timeout: float = 120, kind: str = "follow_up") -> Ticket:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.app.config["SESSIONMAKER"]() as session:
                work = session.scalars(select(PendingWork).where(PendingWork.kind == kind)).one_or_none()
                finished = work is not None and (work.done_at or work.failed_at)
            if finished:
                return self.ticket()
            time.sleep(0.2)
        raise AssertionError(f"the follow-up did not finish in {timeout} s; worker log:\n{self.worker.log()[-3000:]}")

    def emails_to(self, address: str) -> list:
        return [message for rcpts, message in self.smtp.messages if address in rcpts]

    def call_with_audio(self, call, text: str, voice: str, *, keys=("1", "1"), hang_up=False, url=None):  # type: ignore[no-untyped-def]
        """Dial in, choose `keys`, say `text` after the beep, confirm; the recording is served over loopback."""
        call.dial_in()
        call.stay_silent() if call.params["From"] == GIULIA else (call.stay_silent(), call.stay_silent())
        for key in keys:
            call.press(key)
        sid_holder = "RE" + os.urandom(16).hex()
        self.recordings.files[sid_holder] = phone_audio(self.tmp / f"{sid_holder}.wav", text, voice)
        record = call.last.find("Record")
        extra = {
            "RecordingSid": sid_holder,
            "RecordingUrl": url or self.recordings.url(sid_holder),
            "RecordingDuration": "6",
            "Digits": "#",
        }
        if hang_up:
            extra.update(CallStatus="completed")
        call.recording_sids.append(sid_holder)
        call.answer(record.get("action"), extra)
        if not hang_up:
            call.press("1")
        call.recording_ready(sid_holder, url or self.recordings.url(sid_holder))
        call.hang_up()
        return sid_holder


def wait_for_event(line: Line, kind: str, count: int = 1, timeout: float = 60) -> Ticket:
    """The ticket once its thread holds `count` entries of `kind` (the emails' entries follow their sending)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ticket = line.ticket()
        if sum(e.kind == kind for e in ticket.events) >= count:
            return ticket
        time.sleep(0.2)
    raise AssertionError(f"no {count} {kind} entries on the thread; worker log:\n{line.worker.log()[-3000:]}")


def test_known_callers_whole_call_ends_in_a_confirmation_email(line, caller, client):
    call = caller(GIULIA)
    line.call_with_audio(call, "La stampante e la posta sono bloccate, non funziona niente.", "it", keys=("1", "2"))
    ticket = line.wait_until_followed_up()

    assert ticket.transcript and "stampante" in ticket.transcript.lower()
    assert ticket.urgency == "critical", ticket.transcript  # "partly works" on premium is high; the words raised it
    line.smtp.wait_for(3)
    wait_for_event(line, "dispatch_email")
    kinds = [e.kind for e in line.ticket().events]
    assert kinds[:2] == ["opened", "recording"] and "urgency_raised" in kinds and "email" in kinds

    [confirmation] = line.emails_to("giulia.rossi@brambilla.example.it")
    assert ticket.number in confirmation["Subject"]
    body = confirmation.get_content()
    assert "stampante" in body.lower() and "critica" in body and "Gentile Giulia Rossi" in body
    [copy] = line.emails_to("marco.bianchi@brambilla.example.it")  # the customer's referent, a copy of their own
    assert copy["Subject"] == confirmation["Subject"] and "referente di Officine Brambilla" in copy.get_content()
    [notice] = line.emails_to(DISPATCH)
    assert ticket.number in notice["Subject"] and "stampante" in notice.get_content().lower()

    shown = client.get(f"/api/tickets/{ticket.number}", headers={"Authorization": "Bearer test-api-token"}).json
    assert "stampante" in shown["transcript"].lower() and shown["contact_email"] == "giulia.rossi@brambilla.example.it"

    worker_log = line.worker.log()
    for secret_or_personal in (AUTH_TOKEN, GIULIA, GIULIA[3:], ticket.transcript, "stampante"):
        assert secret_or_personal not in worker_log


def test_unregistered_caller_gets_no_email_but_the_dispatchers_do(line, caller):
    ticket_call = caller(STRANGER)
    ticket_call.dial_in()
    ticket_call.press("9")  # English for the rest of the call
    ticket_call.stay_silent()  # no customer code
    ticket_call.press("1"), ticket_call.press("3")
    sid = "RE" + os.urandom(16).hex()
    line.recordings.files[sid] = phone_audio(
        line.tmp / "en.wav", "Hello, I forgot my password and my account is locked.", "en"
    )
    ticket_call.recording_sids.append(sid)
    ticket_call.answer(
        ticket_call.last.find("Record").get("action"),
        {"RecordingSid": sid, "RecordingUrl": line.recordings.url(sid), "RecordingDuration": "5"},
    )
    ticket_call.press("1")
    ticket = line.wait_until_followed_up()

    assert ticket.language == "en" and ticket.needs_match
    assert "password" in (ticket.transcript or "").lower()
    [notice] = line.smtp.wait_for(1)
    time.sleep(1)
    assert len(line.smtp.messages) == 1
    assert notice[0] == [DISPATCH]
    assert "da associare" in notice[1]["Subject"]
    assert any(e.kind == "no_confirmation" for e in ticket.events)


def test_twilio_repeating_every_callback_sends_one_email(line, caller):
    call = caller(GIULIA)
    sid = line.call_with_audio(call, "Ho dimenticato la password.", "it")
    for _ in range(3):
        call.recording_ready(sid, line.recordings.url(sid))
        call.hang_up()
    line.wait_until_followed_up()
    line.smtp.wait_for(3)
    time.sleep(3)  # several relay rounds: nothing more may be sent
    assert len(line.emails_to("giulia.rossi@brambilla.example.it")) == 1
    assert len(line.emails_to("marco.bianchi@brambilla.example.it")) == 1
    assert len(line.emails_to(DISPATCH)) == 1


def test_a_recording_on_a_host_not_allowed_is_refused_and_never_fetched(line, caller):
    elsewhere = RecordingServer(ACCOUNT_SID, AUTH_TOKEN, require_auth=True)
    try:
        call = caller(GIULIA)
        sid = "RE" + os.urandom(16).hex()
        call.dial_in(), call.stay_silent(), call.press("1"), call.press("1")
        call.answer(
            call.last.find("Record").get("action"),
            {"RecordingSid": sid, "RecordingUrl": elsewhere.url(sid), "RecordingDuration": "6"},
        )
        call.press("1")
        ticket = line.wait_until_followed_up()
    finally:
        elsewhere.close()
    assert elsewhere.hits == []
    assert any(e.kind == "recording_refused" for e in ticket.events)
    assert ticket.transcript is None
    line.smtp.wait_for(3)
    [confirmation] = line.emails_to("giulia.rossi@brambilla.example.it")  # the email still goes
    assert ticket.number in confirmation["Subject"]


def test_redis_down_while_a_call_opens_a_ticket_the_email_arrives_once_it_is_back(line, caller):
    line.redis.stop()
    call = caller(GIULIA)
    line.call_with_audio(call, "Ho dimenticato la password.", "it")  # the call itself is unaffected
    assert line.ticket().number
    time.sleep(2)
    assert line.smtp.messages == []
    line.redis.start()
    line.wait_until_followed_up(timeout=150)
    line.smtp.wait_for(3, timeout=120)
    assert line.ticket().confirmation_sent_at is not None
    assert len(line.emails_to("giulia.rossi@brambilla.example.it")) == 1


def test_a_worker_killed_mid_job_loses_nothing_and_sends_no_email_twice(line, caller, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("the same on PostgreSQL; run once, it takes a while")
    line.recordings.delay_first = 4  # the first download hangs: the job is mid-way when killed
    call = caller(GIULIA)
    line.call_with_audio(call, "Ho dimenticato la password.", "it")
    assert line.recordings.first_hit.wait(60), line.worker.log()
    line.worker.kill_hard()
    killed_at = time.monotonic()
    line.worker.start()
    ticket = line.wait_until_followed_up(timeout=180)
    assert time.monotonic() - killed_at < 180
    assert ticket.transcript is not None
    line.smtp.wait_for(3)
    time.sleep(3)
    assert len(line.emails_to("giulia.rossi@brambilla.example.it")) == 1
    assert len(line.emails_to(DISPATCH)) == 1


@pytest.mark.smtp_down
def test_emails_that_finally_fail_are_visible_in_rq_and_on_the_thread(line, caller, settings):
    call = caller(GIULIA)
    line.call_with_audio(call, "Ho dimenticato la password.", "it")
    line.wait_until_followed_up(timeout=120)
    # The confirmation, the referent's copy and the dispatchers' notice: each its own job, each failed.
    ticket = wait_for_event(line, "email_failed", count=3, timeout=120)
    failed = [thread.render(e, "en") for e in ticket.events if e.kind == "email_failed"]
    assert len(failed) == 3 and all("retry-failed" in text for text in failed)
    registry = FailedJobRegistry(queue=Queue(settings.queue_name, connection=Redis.from_url(line.redis.url)))
    # The job writes its thread entry, then fails: RQ files it a moment after the entry is seen.
    deadline = time.monotonic() + 30
    while len(registry.get_job_ids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(registry.get_job_ids()) == 3


def test_a_spoken_message_added_by_phone_reaches_the_thread_and_the_technician(line, caller, client):
    first = caller(GIULIA)
    line.call_with_audio(first, "Ho dimenticato la password.", "it")
    ticket = line.wait_until_followed_up()
    with line.app.config["SESSIONMAKER"]() as session, session.begin():
        session.get(Ticket, ticket.id).technician = User(name="Luca Ferrari", email=TECHNICIAN)

    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("2")  # status: her open ticket is read first
    call.press("2")  # its details
    record = call.press("1").find("Record")
    sid = "RE" + os.urandom(16).hex()
    line.recordings.files[sid] = phone_audio(
        line.tmp / "message.wav", "La stampante e la posta sono bloccate, non funziona niente.", "it"
    )
    extra = {"RecordingSid": sid, "RecordingUrl": line.recordings.url(sid), "RecordingDuration": "4"}
    assert "aggiunto alla richiesta" in call.answer(record.get("action"), extra).said()
    call.post(record.get("recordingStatusCallback"), {**extra, "RecordingStatus": "completed"})
    call.hang_up()

    line.wait_until_followed_up(kind="voice_message")
    line.smtp.wait_for(4)
    ticket = wait_for_event(line, "voice_message_email")
    kinds = [e.kind for e in ticket.events]
    assert "voice_message" in kinds and "voice_message_email" in kinds
    [words] = [e.facts["words"] for e in ticket.events if e.kind == "voice_message_transcript"]
    assert "stampante" in words.lower()
    [notice] = line.emails_to(TECHNICIAN)
    assert ticket.number in notice["Subject"] and words in notice.get_content()
    assert len(line.smtp.messages) == 4  # the confirmation, the referent's copy, the dispatchers', the technician's
