"""The recording download's deadline holds against a server that trickles, and across "not ready" waits.

A server that sends one byte every 0.2 s answers every read well within the read timeout,
so only a deadline on the whole download, enforced while a read is blocked, stops it.
Each test runs the download in a thread and bounds it generously: a regression fails the
test instead of hanging the suite.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ivr.jobs.recordings import RecordingUnavailable, download_recording

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "s3cr3t-auth-token-value"
SID = "RE" + "a1b2c3d4" * 4
RECORDING_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{SID}"
DRIP = 0.2  # seconds between two bytes from a trickling server
TEST_BOUND = 20.0  # no download may keep a test longer than this


class _Trickler(BaseHTTPRequestHandler):
    """Answers as `server.mode` says: a body (or headers) one byte at a time, a redirect, or 404."""

    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        mode = self.server.mode
        self.server.hits += 1
        try:
            if mode == "404":
                self._answer_404()
            elif mode == "redirect" and not self.path.startswith("/media/"):
                self.send_response(302)
                self.send_header("Location", f"/media/{SID}.wav")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif mode == "slow headers":
                self._drip(b"HTTP/1.1 200 OK\r\nContent-Type: audio/x-wav\r\nX-Padding: " + b"a" * 10_000_000)
            else:
                self.send_response(200)
                self.send_header("Content-Type", "audio/x-wav")
                if mode != "slow body, no length":
                    self.send_header("Content-Length", "10000000")
                self.end_headers()
                self.wfile.flush()
                self._drip(b"RIFF" + b"\0" * 10_000_000)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what we want

    def _answer_404(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"not yet")

    def _drip(self, data: bytes) -> None:
        for i in range(len(data)):
            if self.server.stopping.is_set():
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            time.sleep(DRIP)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Trickler)
        self.mode = mode
        self.hits = 0
        self.stopping = threading.Event()

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def serve() -> Iterator[Callable[[str], _Server]]:
    servers: list[tuple[_Server, threading.Thread]] = []

    def start(mode: str) -> _Server:
        server = _Server(mode)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return server

    yield start
    for server, thread in servers:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def download_from(server: _Server, dest: Path, **kw: object) -> BaseException | Path:
    """What the download ended with (its path or its exception), run in a thread bounded by TEST_BOUND."""
    outcome: list[BaseException | Path] = []

    def run() -> None:
        try:
            outcome.append(
                download_recording(
                    f"http://{server.netloc}{RECORDING_PATH}",
                    SID,
                    dest,
                    account_sid=ACCOUNT_SID,
                    auth_token=AUTH_TOKEN,
                    allowed_hosts={server.netloc},
                    **kw,  # type: ignore[arg-type]
                )
            )
        except BaseException as error:  # noqa: B036 - handed to the test as the outcome
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TEST_BOUND)
    assert not thread.is_alive(), f"the download was still running after {TEST_BOUND:.0f} s"
    return outcome[0]


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


@pytest.mark.parametrize("mode", ["slow body", "slow body, no length"])
def test_a_body_trickled_a_byte_at_a_time_is_abandoned_at_the_deadline_and_leaves_no_file(serve, tmp_path, mode):
    server = serve(mode)
    outcome = download_from(server, tmp_path, max_seconds=1.5, timeout=1)
    assert isinstance(outcome, RecordingUnavailable), outcome
    assert "longer than" in str(outcome)
    assert leftovers(tmp_path) == []


def test_headers_trickled_a_byte_at_a_time_are_abandoned_at_the_deadline(serve, tmp_path):
    server = serve("slow headers")
    outcome = download_from(server, tmp_path, max_seconds=1.5, timeout=1)
    assert isinstance(outcome, RecordingUnavailable), outcome
    assert "longer than" in str(outcome)
    assert leftovers(tmp_path) == []


def test_the_deadline_counts_from_the_first_request_across_redirects(serve, tmp_path):
    server = serve("redirect")
    outcome = download_from(server, tmp_path, max_seconds=1.5, timeout=1)
    assert isinstance(outcome, RecordingUnavailable), outcome
    assert "longer than" in str(outcome)
    assert server.hits == 2  # the redirect, then the trickling media
    assert leftovers(tmp_path) == []


def test_waits_for_a_recording_not_ready_yet_never_sleep_past_the_deadline(serve, tmp_path):
    server = serve("404")
    outcome = download_from(server, tmp_path, max_seconds=1, timeout=1, not_ready_delays=(5, 5, 5))
    assert isinstance(outcome, RecordingUnavailable), outcome
    assert "longer than" in str(outcome)
    assert leftovers(tmp_path) == []


def test_short_waits_that_fit_the_deadline_are_still_all_tried(serve, tmp_path):
    server = serve("404")
    outcome = download_from(server, tmp_path, max_seconds=10, timeout=1, not_ready_delays=(0.01, 0.01))
    assert isinstance(outcome, RecordingUnavailable) and "after 3 attempts" in str(outcome), outcome
    assert server.hits == 3


def test_a_given_session_gets_its_own_adapters_back(serve, tmp_path):
    import requests

    session = requests.Session()
    before = dict(session.adapters)
    server = serve("404")
    download_from(server, tmp_path, max_seconds=5, timeout=1, not_ready_delays=(), session=session)
    assert session.adapters == before
