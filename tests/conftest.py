"""Fixtures: the app on SQLite and PostgreSQL, a caller who signs requests like Twilio, an SMTP sink."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, select, text
from twilio.request_validator import RequestValidator

from ivr import create_app
from ivr.settings import Secret, Settings
from storage.db import upgrade

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-not-a-secret"
API_TOKEN = "test-api-token"
BASE_URL = "https://ivr.example.com"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

DIRECTORY_CSV = """customer_code,customer_name,sla,contact_name,email,phone,referent
1001,Officine Brambilla,premium,Giulia Rossi,giulia.rossi@brambilla.example.it,039 2301122,no
1001,Officine Brambilla,premium,Marco Bianchi,marco.bianchi@brambilla.example.it,+39 333 1234567,yes
2002,Studio Verdi,base,Anna Verdi,anna@studioverdi.example.it,0039 02 8899 7766,yes
"""
GIULIA = "+390392301122"  # a known contact of Officine Brambilla (premium)
ANNA = "+390288997766"  # Studio Verdi (base)
STRANGER = "+393471112233"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: an SQLite file, and a private schema on PostgreSQL when it answers."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ivr.db'}"
        upgrade(url)
        yield url
        return
    if not postgres_available():
        pytest.skip("PostgreSQL is not answering on 127.0.0.1:5432")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    upgrade(url)
    yield url
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=Secret(AUTH_TOKEN),
        api_token=Secret(API_TOKEN),
        database_url=database_url,
        public_base_url=BASE_URL,
        recordings_dir=tmp_path / "recordings",
        spool_dir=tmp_path / "spool",
        model_cache_dir=tmp_path / "models",
        on_call_number="+390392847400",
        business_hours="mon-sun 00:00-23:59",
        queue_name=f"ivr-test-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.config["ENGINE"].dispose()


@pytest.fixture
def directory(app) -> None:  # type: ignore[no-untyped-def]
    """The customer directory loaded from CSV, as `flask import-contacts` does."""
    from storage.contacts import import_contacts

    with app.config["SESSIONMAKER"]() as session, session.begin():
        import_contacts(session, DIRECTORY_CSV)


def with_settings(app, **changes):  # type: ignore[no-untyped-def]
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], **changes)
    return app


class Twiml:
    """A parsed TwiML answer, with the questions a test asks of it."""

    def __init__(self, body: str):
        self.body = body
        self.root = ElementTree.fromstring(body)
        assert self.root.tag == "Response"

    def said(self) -> str:
        return " ".join((e.text or "").strip() for e in self.root.iter("Say"))

    def verbs(self) -> list[str]:
        return [e.tag for e in self.root]

    def find(self, tag: str) -> ElementTree.Element | None:
        return next(self.root.iter(tag), None)

    def gather(self) -> ElementTree.Element:
        gather = self.find("Gather")
        assert gather is not None, f"no Gather in {self.body}"
        return gather

    def redirect_url(self) -> str:
        redirect = self.find("Redirect")
        assert redirect is not None, f"no Redirect in {self.body}"
        return (redirect.text or "").strip()


def call_params(call_sid: str, from_: str = GIULIA, to: str = "+390392847438", **extra: str) -> dict[str, str]:
    """What Twilio posts about a call to every webhook, with `extra` for the step's own fields."""
    return {
        "CallSid": call_sid,
        "AccountSid": ACCOUNT_SID,
        "From": from_,
        "To": to,
        "Caller": from_,
        "Called": to,
        "Direction": "inbound",
        "CallStatus": "in-progress",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


class Caller:
    """Plays a caller through Twilio: every request signed, each action URL taken from the last TwiML."""

    def __init__(self, client, from_: str, call_sid: str | None = None, to: str = "+390392847438"):  # type: ignore[no-untyped-def]
        self.client = client
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex
        self.params = call_params(self.call_sid, from_, to)
        self.last: Twiml | None = None
        self.recording_sids: list[str] = []

    def post(self, url: str, extra: dict[str, str] | None = None, *, signed: bool = True):  # type: ignore[no-untyped-def]
        params = {**self.params, **(extra or {})}
        headers = {"X-Twilio-Signature": sign(url, params)} if signed else {}
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return self.client.post(path, data=params, headers=headers)

    def _answer(self, url: str, extra: dict[str, str] | None = None) -> Twiml:
        response = self.post(url, extra)
        assert response.status_code == 200, response.data
        assert response.mimetype == "text/xml"
        self.last = Twiml(response.get_data(as_text=True))
        return self.last

    def dial_in(self) -> Twiml:
        return self._answer(f"{BASE_URL}/twilio/voice", {"CallStatus": "ringing"})

    def press(self, digits: str) -> Twiml:
        assert self.last is not None
        return self._answer(self.last.gather().get("action", ""), {"Digits": digits})

    def stay_silent(self) -> Twiml:
        assert self.last is not None
        return self._answer(self.last.redirect_url())

    def speak(
        self, duration: int = 7, *, hang_up: bool = False, recording_url: str | None = None, sid: str | None = None
    ) -> Twiml:
        """Say something after the beep, ending with # (or by hanging up)."""
        assert self.last is not None
        record = self.last.find("Record")
        assert record is not None, f"no Record in {self.last.body}"
        sid = sid or "RE" + uuid.uuid4().hex
        self.recording_sids.append(sid)
        url = recording_url or f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"
        extra = {"RecordingSid": sid, "RecordingUrl": url, "RecordingDuration": str(duration), "Digits": "#"}
        if hang_up:
            extra.update(CallStatus="completed", Digits="hangup")
        return self._answer(record.get("action", ""), extra)

    def recording_ready(self, sid: str | None = None, url: str | None = None, status: str = "completed"):  # type: ignore[no-untyped-def]
        sid = sid or self.recording_sids[-1]
        url = url or f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"
        extra = {"RecordingSid": sid, "RecordingUrl": url, "RecordingStatus": status, "RecordingDuration": "7"}
        return self.post(f"{BASE_URL}/twilio/recording", extra)

    def hang_up(self, duration: int = 42):  # type: ignore[no-untyped-def]
        return self.post(f"{BASE_URL}/twilio/status", {"CallStatus": "completed", "CallDuration": str(duration)})


@pytest.fixture
def clean_status_counters(settings: Settings) -> Iterator[None]:
    """The PIN counters of this test's queue, removed from the shared Redis afterwards."""
    from redis import Redis

    yield
    redis = Redis.from_url(settings.redis_url)
    for key in redis.scan_iter(f"ivr:{settings.queue_name}:status:*"):
        redis.delete(key)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def caller(client):  # type: ignore[no-untyped-def]
    """A caller factory: caller(from_number) -> Caller."""
    return lambda from_=GIULIA, **kwargs: Caller(client, from_, **kwargs)


class SmtpSink:
    """A real SMTP server in the test process that keeps what it receives.

    Addresses in `refuse` get a permanent 550 at RCPT, those in `defer` a temporary 451; `hold()` makes the next message
    wait in DATA until the test releases it (other connections go on meanwhile).
    """

    def __init__(self) -> None:
        import threading

        self.messages: list = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.refuse: set[str] = set()
        self.defer: set[str] = set()
        self.entered = threading.Event()
        self.gate: threading.Event | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]  # noqa: N802
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        if address in self.defer:
            return f"451 4.3.0 <{address}>: try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        import asyncio
        from email import message_from_bytes, policy

        gate, self.gate = self.gate, None
        if gate is not None:
            self.entered.set()
            await asyncio.get_running_loop().run_in_executor(None, gate.wait, 60)
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.rcpt_tos, message))
        return "250 Message accepted for delivery"

    def hold(self):  # type: ignore[no-untyped-def]
        """The next message waits in DATA until the returned event is set."""
        import threading

        self.entered.clear()
        self.gate = threading.Event()
        return self.gate

    def to(self, address: str) -> list:
        return [message for rcpts, message in self.messages if address in rcpts]

    def wait_for(self, count: int, timeout: float = 60) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.messages


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    if sink.gate is not None:
        sink.gate.set()
    sink.controller.stop()


# -- the worker's parts, shared by the worker and end-to-end tests ---------------------------------


def phone_audio(path: Path, text_spoken: str, voice: str) -> Path:
    """Speech made with espeak-ng, band-passed and resampled to 8 kHz mono like a phone recording."""
    import subprocess

    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "140", "-w", str(raw), text_spoken], check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path), "sinc", "300-3400"], check=True)
    return path


class RecordingServer:
    """Twilio's recording media, on loopback: WAV files by RecordingSid, behind basic auth.

    `not_ready` answers that many 404s first, as Twilio does just after a call; `hold()`
    makes the next request wait, inside the download, until the test releases it.
    """

    def __init__(self, delay_first: float = 0) -> None:
        import base64
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.files: dict[str, Path] = {}
        self.hits: list[str] = []
        self.delay_first = delay_first
        self.first_hit = threading.Event()
        self.not_ready = 0
        self.entered = threading.Event()
        self.gate: threading.Event | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.hits.append(self.path)
                server.first_hit.set()
                if server.delay_first and len(server.hits) == 1:
                    time.sleep(server.delay_first)
                if server.not_ready > 0:
                    server.not_ready -= 1
                    self.send_response(404)
                    self.end_headers()
                    return
                gate, server.gate = server.gate, None
                if gate is not None:
                    server.entered.set()
                    gate.wait(60)
                expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                sid = self.path.rsplit("/", 1)[-1].removesuffix(".wav")
                if sid not in server.files:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = server.files[sid].read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "audio/x-wav")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, sid: str) -> str:
        return f"http://{self.host}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"

    def hold(self):  # type: ignore[no-untyped-def]
        """The next request with audio to serve waits until the returned event is set."""
        import threading

        self.entered.clear()
        self.gate = threading.Event()
        return self.gate

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.httpd.shutdown()


@pytest.fixture
def recordings() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the bundled Whisper model is assembled, once for the whole run."""
    import os

    shared = os.environ.get("IVR_TEST_MODEL_CACHE")
    return Path(shared) if shared else tmp_path_factory.mktemp("models")


DISPATCH = "dispatch@helpdesk.example.it"
PROJECT = Path(__file__).resolve().parent.parent


def worker_environment(settings: Settings, recordings: RecordingServer, **more: str) -> dict[str, str]:
    """The environment of a worker process (`python -m ivr.worker`, or one job) sharing the test's settings."""
    import os

    return {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(PROJECT),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "API_TOKEN": API_TOKEN,
        "DATABASE_URL": settings.database_url,
        "QUEUE_NAME": settings.queue_name,
        "RECORDINGS_DIR": str(settings.recordings_dir),
        "SPOOL_DIR": str(settings.spool_dir),
        "TWILIO_RECORDING_HOSTS": recordings.host,
        **more,
    }


class JobsInProcess:
    """The worker's jobs run by the test, in this process, on the app's settings and database.

    The same functions RQ runs (ivr.jobs.follow_up.run_pending_work), so a test can hold a
    job inside a slow step from another thread and look at the database meanwhile.
    """

    def __init__(self, app, smtp: SmtpSink) -> None:  # type: ignore[no-untyped-def]
        self.app, self.smtp = app, smtp

    def work(self, kind: str | None = None, *, pending: bool = True) -> list:
        from storage.models import PendingWork

        query = select(PendingWork).order_by(PendingWork.id)
        if kind is not None:
            query = query.where(PendingWork.kind == kind)
        if pending:
            query = query.where(PendingWork.done_at.is_(None), PendingWork.failed_at.is_(None))
        with self.app.config["SESSIONMAKER"]() as session:
            return list(session.scalars(query))

    def run(self, work_id: int) -> str:
        from ivr.jobs.follow_up import run_pending_work

        return run_pending_work(work_id)

    def run_all(self, kind: str | None = None, rounds: int = 6) -> list[str]:
        """Run pending work (new work included, as the relay would) until none is left."""
        results: list[str] = []
        for _ in range(rounds):
            pending = self.work(kind)
            if not pending:
                break
            for work in pending:
                try:
                    results.append(self.run(work.id))
                except Exception as error:  # as RQ would: the failure is on the row
                    results.append(f"error: {type(error).__name__}")
        return results


@pytest.fixture
def jobs(app, settings, recordings, smtp_sink, model_cache, monkeypatch):  # type: ignore[no-untyped-def]
    """Jobs run in this process, with the SMTP sink, the recording server and the dispatchers' address."""
    from ivr.worker import runtime

    with_settings(
        app,
        twilio_recording_hosts=(recordings.host,),
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        mail_from="assistenza@helpdesk.example.it",
        dispatch_email=DISPATCH,
        model_cache_dir=model_cache,
    )
    monkeypatch.setattr(runtime, "settings", lambda: app.config["SETTINGS"])
    monkeypatch.setattr(runtime, "session_factory", lambda: app.config["SESSIONMAKER"])
    return JobsInProcess(app, smtp_sink)
