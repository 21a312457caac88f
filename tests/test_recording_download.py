"""Behaviour of the SSRF-safe Twilio recording download, against real loopback HTTP servers."""

from __future__ import annotations

import base64
import io
import logging
import struct
import threading
import time
import wave
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from ivr.jobs.recordings import (
    RECORDING_SID,
    RecordingRefused,
    RecordingUnavailable,
    download_recording,
)

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "s3cr3t-auth-token-value"
SID = "RE" + "a1b2c3d4" * 4
RECORDING_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{SID}"
FAST = (0.01, 0.01, 0.01)


def _make_wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", (i * 300) % 2000 - 1000) for i in range(800)))
    return buf.getvalue()


WAV = _make_wav()


@dataclass
class ServerState:
    """What the fake Twilio serves, and what it saw."""

    expected_auth: str | None = None
    failures: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer first
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location
    content_type: str = "audio/x-wav"
    body: bytes = WAV
    send_length: bool = True
    chunk_delay: float = 0.0  # seconds between 16 kB chunks of the body: a slow server
    hits: Counter[str] = field(default_factory=Counter)
    auth_seen: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total_hits(self) -> int:
        with self.lock:
            return sum(self.hits.values())


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output quiet
        pass

    def do_GET(self) -> None:
        st = self.server.state
        path = urlsplit(self.path).path
        auth = self.headers.get("Authorization")
        with st.lock:
            st.hits[path] += 1
            st.auth_seen.append((path, auth))
            pending = st.failures.get(path)
            fail_status = pending.pop(0) if pending else None
        if path in st.redirects:
            self.send_response(302)
            self.send_header("Location", st.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fail_status is not None:
            self._plain(fail_status, b"not yet")
            return
        if st.expected_auth is not None and auth != st.expected_auth:
            self._plain(401, b"unauthorized")
            return
        if not path.endswith(".wav"):
            self._plain(404, b"no such recording")
            return
        self.send_response(200)
        self.send_header("Content-Type", st.content_type)
        if st.send_length:
            self.send_header("Content-Length", str(len(st.body)))
        self.end_headers()
        try:
            for i in range(0, len(st.body), 16384):
                self.wfile.write(st.body[i : i + 16384])
                self.wfile.flush()
                time.sleep(st.chunk_delay)
        except (BrokenPipeError, ConnectionResetError):
            pass  # client gave up on purpose (size cap)

    def _plain(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = ServerState()

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    @property
    def base(self) -> str:
        return f"http://{self.netloc}"


@pytest.fixture
def make_server() -> Iterator[type[_Server]]:
    servers: list[tuple[_Server, threading.Thread]] = []

    def start() -> _Server:
        srv = _Server()
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        servers.append((srv, t))
        return srv

    yield start  # type: ignore[misc]
    for srv, t in servers:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


@pytest.fixture
def twilio(make_server) -> _Server:
    """The allowed 'api.twilio.com' stand-in; requires Basic auth."""
    srv = make_server()
    srv.state.expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    return srv


@pytest.fixture
def other(make_server) -> _Server:
    """A second host (other port); allowed or not depending on the test."""
    return make_server()


class CountingSession(requests.Session):
    """A real requests session that counts outgoing requests (to prove none were made)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def,override]
        self.sent += 1
        return super().send(request, **kwargs)


def fetch(srv: _Server, dest: Path, *, url: str | None = None, sid: str = SID, **kw) -> Path:  # type: ignore[no-untyped-def]
    kw.setdefault("allowed_hosts", {srv.netloc})
    kw.setdefault("not_ready_delays", FAST)
    kw.setdefault("account_sid", ACCOUNT_SID)
    kw.setdefault("auth_token", AUTH_TOKEN)
    return download_recording(srv.base + RECORDING_PATH if url is None else url, sid, dest, **kw)


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


# --- happy path -------------------------------------------------------------------------------


def test_downloads_with_basic_auth_and_writes_the_file_then_does_not_fetch_again(twilio, tmp_path):
    dest = tmp_path / "rec" / "nested"
    path = fetch(twilio, dest)

    assert path == dest / f"{SID}.wav"
    assert path.read_bytes() == WAV
    with wave.open(str(path)) as w:
        assert w.getframerate() == 8000
    assert twilio.state.hits[RECORDING_PATH + ".wav"] == 1
    assert twilio.state.auth_seen == [(RECORDING_PATH + ".wav", twilio.state.expected_auth)]
    assert leftovers(dest) == [f"{SID}.wav"]

    assert fetch(twilio, dest) == path
    assert twilio.state.total_hits == 1


@pytest.mark.parametrize("suffix", [".wav", ".mp3"])
def test_an_url_that_already_has_an_extension_still_fetches_the_wav(twilio, tmp_path, suffix):
    path = fetch(twilio, tmp_path, url=twilio.base + RECORDING_PATH + suffix)
    assert path.read_bytes() == WAV
    assert twilio.state.hits == Counter({RECORDING_PATH + ".wav": 1})


def test_an_empty_leftover_file_is_downloaded_again(twilio, tmp_path):
    (tmp_path / f"{SID}.wav").write_bytes(b"")
    assert fetch(twilio, tmp_path).read_bytes() == WAV
    assert twilio.state.total_hits == 1


# --- retries ----------------------------------------------------------------------------------


def test_retries_the_transient_404_then_succeeds(twilio, tmp_path):
    twilio.state.failures[RECORDING_PATH + ".wav"] = [404, 404]
    path = fetch(twilio, tmp_path, not_ready_delays=FAST)
    assert path.read_bytes() == WAV
    assert twilio.state.hits[RECORDING_PATH + ".wav"] == 3


def test_retries_server_errors_too(twilio, tmp_path):
    twilio.state.failures[RECORDING_PATH + ".wav"] = [503, 500]
    assert fetch(twilio, tmp_path).read_bytes() == WAV
    assert twilio.state.hits[RECORDING_PATH + ".wav"] == 3


def test_gives_up_with_recording_unavailable_after_the_delays_are_used(twilio, tmp_path):
    twilio.state.failures[RECORDING_PATH + ".wav"] = [404] * 10
    with pytest.raises(RecordingUnavailable):
        fetch(twilio, tmp_path, not_ready_delays=FAST)
    assert twilio.state.hits[RECORDING_PATH + ".wav"] == len(FAST) + 1
    assert leftovers(tmp_path) == []


def test_rejected_credentials_fail_at_once_without_retrying(twilio, tmp_path):
    with pytest.raises(RecordingUnavailable):
        fetch(twilio, tmp_path, auth_token="wrong-token")
    assert twilio.state.total_hits == 1
    assert leftovers(tmp_path) == []


def test_connection_refused_is_retried_then_unavailable(make_server, tmp_path):
    srv = make_server()
    netloc, base = srv.netloc, srv.base
    srv.shutdown()
    srv.server_close()  # nothing listens on that port any more
    with pytest.raises(RecordingUnavailable, match="4 attempts"):
        download_recording(
            base + RECORDING_PATH,
            SID,
            tmp_path,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            allowed_hosts={netloc},
            not_ready_delays=FAST,
            timeout=2,
        )


# --- refusals before any request --------------------------------------------------------------


@pytest.mark.parametrize(
    "allowed",
    [
        {"api.twilio.com"},
        {"127.0.0.1"},  # no port in the entry: default port only
        {"127.0.0.2:{port}"},
    ],
)
def test_a_host_not_in_the_allowlist_is_refused_and_the_server_got_zero_requests(twilio, tmp_path, allowed):
    allowed = {a.format(port=twilio.server_address[1]) for a in allowed}
    with pytest.raises(RecordingRefused):
        fetch(twilio, tmp_path, allowed_hosts=allowed)
    assert twilio.state.total_hits == 0
    assert leftovers(tmp_path) == []


def test_allowlist_entries_are_compared_case_insensitively(twilio, tmp_path):
    url = f"HTTP://127.0.0.1:{twilio.server_address[1]}{RECORDING_PATH}"
    assert fetch(twilio, tmp_path, url=url).read_bytes() == WAV


@pytest.mark.parametrize(
    "bad_sid",
    [
        "RE123",
        "RE" + "A1B2C3D4" * 4,  # upper-case hex
        SID + "\n",  # `$` alone would accept a trailing newline
        "CA" + SID[2:],
        "../../etc/passwd",
        "",
    ],
)
def test_a_malformed_recording_sid_is_refused_with_zero_requests(twilio, tmp_path, bad_sid):
    with pytest.raises(RecordingRefused):
        fetch(twilio, tmp_path, sid=bad_sid)
    assert twilio.state.total_hits == 0
    assert leftovers(tmp_path) == []


def test_a_sid_that_does_not_match_the_url_path_is_refused(twilio, tmp_path):
    other_sid = "RE" + "f" * 32
    assert RECORDING_SID.match(other_sid)
    with pytest.raises(RecordingRefused):
        fetch(twilio, tmp_path, sid=other_sid)
    assert twilio.state.total_hits == 0


@pytest.mark.parametrize(
    "template",
    [
        "http://user:pass@{netloc}{path}",
        "http://{account}:{token}@{netloc}{path}",
        "http://{netloc}@169.254.169.254{path}",
        "http://{netloc}{path}?x=1",
        "http://{netloc}{path}#frag",
        "http://{netloc}/2010-04-01/Accounts/{account}/Calls/{sid}",
        "http://{netloc}{path}/../../../admin",
        "ftp://{netloc}{path}",
        "http://{netloc}\\@evil.example{path}",
        "http://{netloc}{path}\n",
        "//{netloc}{path}",
        "not a url",
    ],
)
def test_unacceptable_urls_are_refused_with_zero_requests(twilio, tmp_path, template):
    url = template.format(netloc=twilio.netloc, path=RECORDING_PATH, account=ACCOUNT_SID, token=AUTH_TOKEN, sid=SID)
    with pytest.raises(RecordingRefused):
        fetch(twilio, tmp_path, url=url)
    assert twilio.state.total_hits == 0


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://api.twilio.com" + RECORDING_PATH, {"api.twilio.com"}),
        ("http://api.twilio.com:80" + RECORDING_PATH, {"api.twilio.com:80"}),
        ("http://localhost:8080" + RECORDING_PATH, {"localhost:8080"}),  # names are not loopback literals
        ("http://10.0.0.1" + RECORDING_PATH, {"10.0.0.1"}),
        ("http://169.254.169.254" + RECORDING_PATH, {"169.254.169.254"}),
    ],
)
def test_plain_http_is_refused_for_non_loopback_hosts_without_a_network_attempt(tmp_path, url, allowed):
    session = CountingSession()
    with pytest.raises(RecordingRefused):
        download_recording(
            url,
            SID,
            tmp_path,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            allowed_hosts=allowed,
            session=session,
        )
    assert session.sent == 0


def test_https_non_allowlisted_host_is_refused_without_a_network_attempt(tmp_path):
    session = CountingSession()
    with pytest.raises(RecordingRefused):
        download_recording(
            "https://evil.example" + RECORDING_PATH,
            SID,
            tmp_path,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            allowed_hosts={"api.twilio.com"},
            session=session,
        )
    assert session.sent == 0


def test_a_single_string_as_allowlist_is_a_programming_error(twilio, tmp_path):
    with pytest.raises(TypeError):
        fetch(twilio, tmp_path, allowed_hosts=twilio.netloc)
    assert twilio.state.total_hits == 0


# --- redirects --------------------------------------------------------------------------------


def test_a_redirect_to_an_allowed_host_is_followed_without_sending_credentials_there(twilio, other, tmp_path):
    media = f"/media/{SID}.wav"
    twilio.state.redirects[RECORDING_PATH + ".wav"] = other.base + media + "?Signature=abc"
    path = fetch(twilio, tmp_path, allowed_hosts={twilio.netloc, other.netloc})

    assert path.read_bytes() == WAV
    assert twilio.state.auth_seen == [(RECORDING_PATH + ".wav", twilio.state.expected_auth)]
    assert other.state.auth_seen == [(media, None)]


def test_a_relative_redirect_on_the_same_host_keeps_credentials(twilio, tmp_path):
    twilio.state.redirects[RECORDING_PATH + ".wav"] = f"/media/{SID}.wav"
    assert fetch(twilio, tmp_path).read_bytes() == WAV
    assert [auth for _, auth in twilio.state.auth_seen] == [twilio.state.expected_auth] * 2


def test_a_redirect_to_a_host_not_in_the_allowlist_is_refused_and_that_host_got_zero_requests(twilio, other, tmp_path):
    twilio.state.redirects[RECORDING_PATH + ".wav"] = other.base + f"/media/{SID}.wav"
    with pytest.raises(RecordingRefused):
        fetch(twilio, tmp_path)
    assert twilio.state.total_hits == 1
    assert other.state.total_hits == 0
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "http://user:pw@{netloc}/media/x.wav"],
)
def test_redirects_to_metadata_files_or_userinfo_are_refused(twilio, tmp_path, location):
    twilio.state.redirects[RECORDING_PATH + ".wav"] = location.format(netloc=twilio.netloc)
    with pytest.raises(RecordingRefused):
        fetch(twilio, tmp_path)
    assert twilio.state.total_hits == 1


def test_more_than_three_redirects_are_not_followed(twilio, tmp_path):
    twilio.state.redirects[RECORDING_PATH + ".wav"] = "/hop1"
    twilio.state.redirects["/hop1"] = "/hop2"
    twilio.state.redirects["/hop2"] = "/hop3"
    twilio.state.redirects["/hop3"] = "/hop4"
    with pytest.raises(RecordingUnavailable, match="redirects"):
        fetch(twilio, tmp_path)
    assert twilio.state.total_hits == 4
    assert "/hop4" not in twilio.state.hits


# --- body checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "streamed"])
def test_an_oversized_body_is_refused_and_no_file_is_left_behind(twilio, tmp_path, send_length):
    twilio.state.body = WAV + b"\0" * 300_000
    twilio.state.send_length = send_length
    with pytest.raises(RecordingUnavailable, match="too large"):
        fetch(twilio, tmp_path, max_bytes=100_000)
    assert leftovers(tmp_path) == []
    assert twilio.state.total_hits == 1  # size is permanent, not retried


def test_a_download_that_trickles_past_the_time_cap_is_abandoned(twilio, tmp_path):
    twilio.state.body = WAV + b"\0" * 200_000
    twilio.state.chunk_delay = 0.2  # every read answers in time, the whole body does not
    with pytest.raises(RecordingUnavailable, match="longer than"):
        fetch(twilio, tmp_path, max_seconds=0.5, timeout=2)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("ctype", ["text/html; charset=utf-8", "application/octet-stream", ""])
def test_a_non_audio_content_type_is_refused_and_no_file_is_left_behind(twilio, tmp_path, ctype):
    twilio.state.content_type = ctype
    with pytest.raises(RecordingUnavailable, match="content type"):
        fetch(twilio, tmp_path)
    assert leftovers(tmp_path) == []


def test_audio_wav_with_parameters_is_accepted(twilio, tmp_path):
    twilio.state.content_type = "Audio/WAV; codec=1"
    assert fetch(twilio, tmp_path).read_bytes() == WAV


# --- logging ----------------------------------------------------------------------------------


def test_logs_never_contain_the_auth_token_or_full_urls(twilio, other, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="ivr.jobs.recordings")
    twilio.state.failures[RECORDING_PATH + ".wav"] = [404]
    fetch(twilio, tmp_path / "ok")
    with pytest.raises(RecordingRefused):
        fetch(twilio, tmp_path / "a", url=f"http://{ACCOUNT_SID}:{AUTH_TOKEN}@{twilio.netloc}{RECORDING_PATH}")
    twilio.state.redirects[RECORDING_PATH + ".wav"] = other.base + "/media/x.wav?Signature=topsecret"
    with pytest.raises(RecordingRefused):
        fetch(twilio, tmp_path / "b")

    text = caplog.text
    assert AUTH_TOKEN not in text
    assert "topsecret" not in text
    assert RECORDING_PATH not in text
    assert SID in text and twilio.netloc in text
