"""Fixtures: the app on SQLite and PostgreSQL, a caller who signs requests like Twilio, an SMTP sink."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs
from xml.etree import ElementTree

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import Engine, create_engine, event, select, text

from ivr import create_app
from ivr.settings import Secret, Settings
from ivr.simulator import twilio_requests as twilio
from ivr.simulator.media import RecordingServer, spoken_wav
from ivr.simulator.twilio_requests import LINE_NUMBER, TwilioCall
from storage.contacts import get_contact_by_phone
from storage.db import upgrade
from storage.models import Call
from storage.tickets import open_ticket_for_call

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


def serve_on_loopback(handle: Callable[[BaseHTTPRequestHandler], None]) -> tuple[ThreadingHTTPServer, str]:
    """A quiet HTTP server on a free loopback port, in a thread, handing every GET and POST to `handle`,
    and its URL: the stand-ins of Twilio's REST API are made on it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            handle(self)

        def do_POST(self) -> None:  # noqa: N802
            handle(self)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def reply_json(request: BaseHTTPRequestHandler, status: int, body: object) -> None:
    """Answer as Twilio's REST API does: `body` as JSON, with this status."""
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


def posted_form(request: BaseHTTPRequestHandler) -> dict[str, str]:
    """The form a client of Twilio's REST API posted (one value per field)."""
    length = int(request.headers.get("Content-Length") or 0)
    return {k: v[0] for k, v in parse_qs(request.rfile.read(length).decode(), keep_blank_values=True).items()}


def twilio_basic_auth(auth_token: str, account_sid: str = ACCOUNT_SID) -> str:
    """The Authorization header twilio's client sends for the account."""
    return "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()


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
    with private_postgresql_schema() as url:
        upgrade(url)
        yield url


@contextmanager
def private_postgresql_schema() -> Iterator[str]:
    """A fresh schema of its own on the test PostgreSQL, dropped afterwards: its URL (a skip when none answers)."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not answering on 127.0.0.1:5432")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=Secret(AUTH_TOKEN),
        api_token=Secret(API_TOKEN),
        secret_key=Secret("test-secret-key-not-a-secret"),
        database_url=database_url,
        public_base_url=BASE_URL,
        recordings_dir=tmp_path / "recordings",
        spool_dir=tmp_path / "spool",
        model_cache_dir=tmp_path / "models",
        on_call_number="+390392847400",
        business_hours="mon-sun 00:00-24:00",  # every minute, holidays included: the line never closes on a test
        business_holidays="open",
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


def ticket_of(app, phone: str) -> str:  # type: ignore[no-untyped-def]
    """A ticket opened, urgency high, by a stored call from the contact with this caller ID; its number."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        contact = get_contact_by_phone(session, phone)
        assert contact is not None, f"{phone} is not in the directory"
        call = Call(call_sid="CA" + uuid.uuid4().hex, caller=phone, language="it", attempts=0)
        call.contact, call.customer = contact, contact.customer
        session.add(call)
        session.flush()
        return open_ticket_for_call(session, call, "high", voicemail=False, opened_by="a test").number or ""


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


def call_params(call_sid: str, from_: str = GIULIA, to: str = LINE_NUMBER, **extra: str) -> dict[str, str]:
    """What Twilio posts about a call to every webhook, with `extra` for the step's own fields."""
    return {**TwilioCall(ACCOUNT_SID, AUTH_TOKEN, from_, to, call_sid, status="in-progress").params, **extra}


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return twilio.signature(token, url, params)


class Caller:
    """Plays a caller through Twilio: every request signed, each action URL taken from the last TwiML."""

    def __init__(self, client, from_: str, call_sid: str | None = None, to: str = LINE_NUMBER):  # type: ignore[no-untyped-def]
        self.client = client
        self.twilio_call = TwilioCall(
            ACCOUNT_SID, AUTH_TOKEN, from_, to, call_sid or twilio.new_sid("CA"), status="in-progress"
        )
        self.call_sid = self.twilio_call.call_sid
        self.last: Twiml | None = None
        self.recording_sids: list[str] = []

    @property
    def params(self) -> dict[str, str]:
        return self.twilio_call.params

    def post(self, url: str, extra: dict[str, str] | None = None, *, signed: bool = True):  # type: ignore[no-untyped-def]
        request = self.twilio_call.request(url, extra)
        return self.client.post(request.path, data=request.params, headers=request.headers if signed else {})

    def answer(self, url: str, extra: dict[str, str] | None = None) -> Twiml:
        """Post to `url` and take its TwiML as the line's last answer."""
        response = self.post(url, extra)
        assert response.status_code == 200, response.data
        assert response.mimetype == "text/xml"
        self.last = Twiml(response.get_data(as_text=True))
        return self.last

    def dial_in(self) -> Twiml:
        return self.answer(f"{BASE_URL}/twilio/voice", {"CallStatus": "ringing"})

    def press(self, digits: str) -> Twiml:
        assert self.last is not None
        return self.answer(self.last.gather().get("action", ""), twilio.keys_pressed(digits))

    def stay_silent(self) -> Twiml:
        assert self.last is not None
        return self.answer(self.last.redirect_url())

    def speak(
        self, duration: int = 7, *, hang_up: bool = False, recording_url: str | None = None, sid: str | None = None
    ) -> Twiml:
        """Say something after the beep, ending with # (or by hanging up)."""
        assert self.last is not None
        record = self.last.find("Record")
        assert record is not None, f"no Record in {self.last.body}"
        sid = sid or twilio.new_sid("RE")
        self.recording_sids.append(sid)
        recorded = twilio.recording(sid, duration, recording_url or twilio.recording_url(ACCOUNT_SID, sid))
        return self.answer(record.get("action", ""), twilio.message_left(recorded, hung_up=hang_up))

    def dial_ends(self, status: str = "no-answer") -> Twiml:
        """The technician's leg of the last TwiML's Dial ends: `completed` once answered, or `no-answer`."""
        assert self.last is not None
        dial = self.last.find("Dial")
        assert dial is not None, f"no Dial in {self.last.body}"
        return self.answer(dial.get("action", ""), twilio.dial_ended(status))

    def recording_ready(self, sid: str | None = None, url: str | None = None, status: str = "completed"):  # type: ignore[no-untyped-def]
        sid = sid or self.recording_sids[-1]
        recorded = twilio.recording(sid, 7, url or twilio.recording_url(ACCOUNT_SID, sid))
        return self.post(f"{BASE_URL}/twilio/recording", twilio.recording_status(recorded, status))

    def hang_up(self, duration: int = 42):  # type: ignore[no-untyped-def]
        return self.post(f"{BASE_URL}/twilio/status", twilio.call_ended(duration))


@pytest.fixture
def clean_status_counters(settings: Settings) -> Iterator[None]:
    """The PIN counters of this test's queue, removed from the shared Redis afterwards."""
    from redis import Redis

    yield
    redis = Redis.from_url(settings.redis_url)
    for key in redis.scan_iter(f"ivr:{settings.queue_name}:status:*"):
        redis.delete(key)


def sign_in(client, user) -> None:  # type: ignore[no-untyped-def]
    """The console's session as a sign-in leaves it (Flask-Login's id with the session version, and when it
    began: a session lasts an office day), without going through the login form."""
    with client.session_transaction() as s:
        s["_user_id"] = f"{user.id}:{user.session_version}"
        s["_fresh"] = True
        s["signed_in_at"] = int(time.time())


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
    path.write_bytes(spoken_wav(text_spoken, voice, band_pass=True))
    return path


@pytest.fixture
def recordings() -> Iterator[RecordingServer]:
    """Twilio's recording media on loopback, asking for the account's credentials."""
    server = RecordingServer(ACCOUNT_SID, AUTH_TOKEN, require_auth=True)
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
        "SECRET_KEY": "test-secret-key",
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


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL the app sends while the block runs (BEGIN included on SQLite, where storage.db sends it),
    on its engine and on the engine of the line's notes (one and the same on SQLite)."""
    with statements_on(app.config["ENGINE"], app.config["NOTES_ENGINE"]) as seen:
        yield seen


@contextmanager
def statements_on(*engines: Engine) -> Iterator[list[str]]:
    """The SQL sent on these engines while the block runs, each statement on one line."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    for engine in set(engines):
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in set(engines):
            event.remove(engine, "before_cursor_execute", record)
