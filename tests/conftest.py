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
from sqlalchemy import create_engine, text
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


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


class Caller:
    """Plays a caller through Twilio: every request signed, each action URL taken from the last TwiML."""

    def __init__(self, client, from_: str, call_sid: str | None = None, to: str = "+390392847438"):  # type: ignore[no-untyped-def]
        self.client = client
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex
        self.params = {
            "CallSid": self.call_sid,
            "AccountSid": ACCOUNT_SID,
            "From": from_,
            "To": to,
            "Caller": from_,
            "Called": to,
            "Direction": "inbound",
            "CallStatus": "in-progress",
            "ApiVersion": "2010-04-01",
        }
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

    def speak(self, duration: int = 7, *, hang_up: bool = False, recording_url: str | None = None) -> Twiml:
        """Say something after the beep, ending with # (or by hanging up)."""
        assert self.last is not None
        record = self.last.find("Record")
        assert record is not None, f"no Record in {self.last.body}"
        sid = "RE" + uuid.uuid4().hex
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
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def caller(client):  # type: ignore[no-untyped-def]
    """A caller factory: caller(from_number) -> Caller."""
    return lambda from_=GIULIA, **kwargs: Caller(client, from_, **kwargs)


class SmtpSink:
    """A real SMTP server in the test process that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.rcpt_tos, message))
        return "250 Message accepted for delivery"

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
    sink.controller.stop()
