"""Health for operators: GET /metrics (Prometheus) and GET /healthz, as an operator would check them.

The multiprocess test runs the app as production does: a real gunicorn with two workers
(gunicorn.conf.py, `wsgi:app`) on a loopback port, on a migrated SQLite file holding the
demo directory, and plays signed Twilio calls at it over HTTP; whichever worker serves a
scrape, the figures must add up both workers' webhooks and match the database.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter as Tally
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from ivr import create_app
from ivr.settings import Secret, Settings
from ivr.simulator import twilio_requests as twilio
from storage.contacts import import_contacts
from storage.db import make_engine, make_sessionmaker, upgrade
from storage.models import Call, Email, PendingWork, Ticket, utcnow
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, GIULIA, free_port

PROJECT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
DEMO_CALLER = "+390392847101"  # Giulia Brambilla in examples/contacts.csv
METRICS_TOKEN = "test-metrics-token"
APOLOGY = "Ci scusi"  # the start of prompts/it.toml's sorry_error


# -- reading a scrape -------------------------------------------------------------------------------


@dataclass
class Scrape:
    """A /metrics answer, parsed: each sample's value by name and labels."""

    text: str

    def value(self, name: str, **labels: str) -> float:
        found = [v for n, ls, v in self.samples() if n == name and ls == labels]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
        return found[0]

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(self.text)
            for s in family.samples
        ]

    def by_labels(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        """The samples of `name` as {label values: value}, zeros left out."""
        return {tuple(ls[k] for k in keys): v for n, ls, v in self.samples() if n == name and v}


# -- a real gunicorn --------------------------------------------------------------------------------


@dataclass
class Line:
    """The support line served by gunicorn on loopback, its database, and the webhooks sent to it by endpoint."""

    port: int
    process: subprocess.Popen[bytes]
    database_url: str
    access_log: Path
    sent: Tally[str]
    call_sids: list[str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            connection.close()

    def scrape(self) -> Scrape:
        status, _, body = self.get("/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert status == 200, body
        return Scrape(body)

    def post(self, request: twilio.TwilioRequest, endpoint: str) -> str:
        """POST a signed webhook; it must answer 2xx without an apology (but on the fallback URL)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            headers = {**request.headers, "Content-Type": "application/x-www-form-urlencoded"}
            connection.request("POST", request.path, urlencode(request.params), headers)
            response = connection.getresponse()
            body = response.read().decode()
        finally:
            connection.close()
        assert 200 <= response.status < 300, f"{request.path}: {response.status} {body[:300]}"
        assert endpoint == "twilio.fallback" or APOLOGY not in body, f"{request.path} apologised: {body[:300]}"
        self.sent[endpoint] += 1
        return body

    def voice_pids(self) -> Tally[str]:
        """How many /twilio/voice requests each worker served, from the access log (`<pid> <path> <status>`)."""
        lines = self.access_log.read_text().splitlines()
        return Tally(line.split()[0] for line in lines if " /twilio/voice " in line)


class LiveCall:
    """A call played over HTTP: each answer's TwiML read for the next URL."""

    def __init__(self, line: Line, caller: str = DEMO_CALLER) -> None:
        self.line = line
        self.call = twilio.TwilioCall(ACCOUNT_SID, AUTH_TOKEN, caller, status="in-progress")
        line.call_sids.append(self.call.call_sid)
        self.last: ElementTree.Element | None = None

    def send(self, url: str, endpoint: str, fields: dict[str, str] | None = None) -> None:
        body = self.line.post(self.call.request(url, fields), endpoint)
        self.last = ElementTree.fromstring(body) if body else None

    def next_url(self, tag: str) -> str:
        assert self.last is not None
        verb = next(self.last.iter(tag))
        return verb.get("action") or (verb.text or "").strip()

    def dial_in(self) -> None:
        self.send(f"{self.line.base_url}/twilio/voice", "twilio.voice", {"CallStatus": "ringing"})

    def open_ticket(self) -> None:
        """Welcome, main menu, triage, the message, confirmed: a ticket."""
        self.dial_in()
        self.send(self.next_url("Redirect"), "twilio.step")  # silence at the welcome: the main menu
        self.send(self.next_url("Gather"), "twilio.step", twilio.keys_pressed("1"))  # a problem
        self.send(self.next_url("Gather"), "twilio.step", twilio.keys_pressed("1"))  # triage
        sid = twilio.new_sid("RE")
        recorded = twilio.recording(sid, 7, twilio.recording_url(ACCOUNT_SID, sid))
        self.send(self.next_url("Record"), "twilio.step", twilio.message_left(recorded))
        self.send(self.next_url("Gather"), "twilio.step", twilio.keys_pressed("1"))  # confirmed

    def hang_up(self) -> None:
        self.send(f"{self.line.base_url}/twilio/status", "twilio.status", twilio.call_ended(42))


def start_gunicorn(tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """gunicorn as the Procfile runs it (gunicorn.conf.py, 2 workers, `wsgi:app`), its access log naming the pid."""
    access_log, error_log = tmp / "access.log", tmp / "error.log"
    command = [
        str(GUNICORN), "--bind", f"127.0.0.1:{env['PORT']}", "--workers", "2",
        "--access-logfile", str(access_log), "--access-logformat", "%(p)s %(m)s %(U)s %(s)s",
        "--error-logfile", str(error_log), "wsgi:app",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, access_log, error_log


def wait_until_serving(process: subprocess.Popen[bytes], port: int, error_log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{error_log.read_text()}")
        booted = error_log.exists() and error_log.read_text().count("Booting worker") >= 2
        if booted:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                connection.close()
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not serve within 60 s:\n{error_log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the master (graceful), killed after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    """The line on gunicorn, PROMETHEUS_MULTIPROC_DIR unset: gunicorn.conf.py makes the directory."""
    tmp = tmp_path_factory.mktemp("gunicorn")
    database_url = f"sqlite:///{tmp / 'ivr.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session, session.begin():
        import_contacts(session, (PROJECT / "examples" / "contacts.csv").read_text(encoding="utf-8"))
    engine.dispose()
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        PORT=str(port),
        PYTHONPATH=str(PROJECT),
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        API_TOKEN="test-api-token",
        SECRET_KEY="test-secret-key",
        METRICS_TOKEN=METRICS_TOKEN,
        DATABASE_URL=database_url,
        REDIS_URL="redis://127.0.0.1:6379/0",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        QUEUE_NAME=f"ivr-test-{uuid.uuid4().hex[:8]}",
        RECORDINGS_DIR=str(tmp / "recordings"),
        SPOOL_DIR=str(tmp / "spool"),
        MODEL_CACHE_DIR=str(tmp / "models"),
        BUSINESS_HOURS="mon-sun 00:00-24:00",
        BUSINESS_HOLIDAYS="open",
    )
    process, access_log, error_log = start_gunicorn(tmp, env)
    try:
        wait_until_serving(process, port, error_log)
        yield Line(port, process, database_url, access_log, Tally(), [])
    finally:
        stop(process)


def test_the_figures_add_up_across_both_workers_and_match_the_database(line: Line) -> None:
    # Calls that only dial in, sent in parallel until both workers have served some (the access log says who).
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(10):
            list(pool.map(lambda _: LiveCall(line).dial_in(), range(12)))
            if len(line.voice_pids()) == 2:
                break
    assert len(line.voice_pids()) == 2, f"one worker served every call: {line.voice_pids()}"
    # Whole calls that open a ticket each, then end; and Twilio calling the fallback URL twice.
    for _ in range(3):
        call = LiveCall(line)
        call.open_ticket()
        call.hang_up()
    for _ in range(2):
        call = LiveCall(line, GIULIA)
        call.send(f"{line.base_url}/twilio/fallback", "twilio.fallback", {"ErrorCode": "11200"})

    voice_sent = line.sent["twilio.voice"]
    assert sum(line.voice_pids().values()) == voice_sent
    engine = make_engine(line.database_url)
    with engine.connect() as connection:
        calls = connection.scalar(select(func.count()).select_from(Call))
        tickets = connection.scalar(select(func.count()).select_from(Ticket).where(Ticket.channel == "phone"))
        work = dict(connection.execute(select(PendingWork.kind, func.count()).group_by(PendingWork.kind)).all())
    engine.dispose()
    assert calls == voice_sent and tickets == 3 and work.get("follow_up") == 3

    # Several scrapes, served by either worker: each the same sums of both workers' files.
    scrapes = [line.scrape() for _ in range(6)]
    for scrape in scrapes:
        for endpoint in ("twilio.voice", "twilio.step", "twilio.status", "twilio.fallback"):
            count = scrape.value("ivr_webhook_duration_seconds_count", endpoint=endpoint)
            assert count == line.sent[endpoint], endpoint
            assert scrape.value("ivr_webhook_duration_seconds_bucket", endpoint=endpoint, le="+Inf") == count
        assert scrape.value("ivr_webhook_duration_seconds_sum", endpoint="twilio.voice") > 0
        assert scrape.value("ivr_fallback_answers_total", endpoint="twilio.fallback") == 2
        assert scrape.value("ivr_fallback_answers_total", endpoint="twilio.step") == 0  # no turn of the menu failed
        assert scrape.value("ivr_database_up") == 1
        assert scrape.value("ivr_calls_total") == calls
        assert scrape.by_labels("ivr_tickets_total", "channel") == {("phone",): 3}
        # No worker runs here: the relay has handed nothing to Redis yet.
        assert scrape.by_labels("ivr_outbox_work", "kind", "state") == {(k, "waiting"): n for k, n in work.items()}
    # Labelled by endpoint, never by URL: no CallSid and no step URL in a series.
    assert "/twilio/" not in scrapes[0].text
    assert line.call_sids and not any(sid in scrapes[0].text for sid in line.call_sids)


def test_metrics_needs_the_bearer_token_when_one_is_set(line: Line) -> None:
    status, headers, _ = line.get("/metrics")
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert line.get("/metrics", {"Authorization": "Bearer not-the-token"})[0] == 401
    assert line.get("/metrics", {"Authorization": METRICS_TOKEN})[0] == 401  # the scheme is part of it
    status, headers, body = line.get("/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200 and headers["Content-Type"].startswith("text/plain") and "ivr_webhook" in body
    assert METRICS_TOKEN not in body


def test_healthz_on_gunicorn_answers_without_a_token(line: Line) -> None:
    status, headers, body = line.get("/healthz")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert '"database":"ok"' in body.replace(" ", "") and '"redis":"ok"' in body.replace(" ", "")


# -- gunicorn.conf.py's hooks -----------------------------------------------------------------------


def gunicorn_conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", PROJECT / "gunicorn.conf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_given_metrics_directory_is_emptied_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"a previous run's counts")
    (directory / "README").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    gunicorn_conf().on_starting(None)
    assert sorted(p.name for p in directory.iterdir()) == ["README"]


def test_without_a_metrics_directory_gunicorn_makes_one_and_removes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # so that monkeypatch puts back the environment as it was
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    conf = gunicorn_conf()
    conf.on_starting(None)
    made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert made.is_dir() and not any(made.iterdir())
    conf.on_exit(None)
    assert not made.exists()


# -- in one process: the collector on both databases, the token, /healthz -----------------------------


def scrape(client, token: str | None = None) -> Scrape:  # type: ignore[no-untyped-def]
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    assert response.status_code == 200, response.data
    return Scrape(response.get_data(as_text=True))


def test_the_database_figures_are_read_at_scrape(app, client) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    with app.config["SESSIONMAKER"]() as session, session.begin():
        for n, (delay, sent_ago) in enumerate([(90, 1), (2000, 2), (30, 30)]):  # the last outside the 24 h
            ended = now - timedelta(hours=sent_ago, seconds=delay)
            session.add(Call(call_sid=f"CA{n:032d}", caller=GIULIA, ended_at=ended))
            session.add(
                Ticket(
                    urgency="normal",
                    call_sid=f"CA{n:032d}",
                    status="received",
                    confirmation_sent_at=ended + timedelta(seconds=delay),
                )
            )
        session.add(Ticket(urgency="high", channel="console", status="closed"))
        refused = Email(key="e1", kind="confirmation", to_address="x@example.it", subject="s", body="b", message_id="")
        refused.refused_at, refused.refusal = now, "550 5.1.1 mailbox unavailable"
        session.add(refused)
        sent = Email(key="e2", kind="dispatch", to_address="d@example.it", subject="s", body="b", message_id="")
        sent.sent_at = now
        session.add(sent)
        later, earlier = now + timedelta(minutes=10), now - timedelta(minutes=10)
        for key, columns in {
            "w1": {},
            "w2": {"enqueued_at": earlier},
            "w3": {"enqueued_at": later, "failures": 1},
            "w4": {"enqueued_at": earlier, "lease_until": later, "lease_token": "t"},
            "w5": {"failed_at": earlier, "failures": 3},
            "w6": {"done_at": earlier, "failures": 1},
        }.items():
            session.add(PendingWork(key=key, kind="follow_up", version=0, runs=0, starts=0, **columns))

    metrics = scrape(client)
    assert metrics.value("ivr_database_up") == 1
    assert metrics.value("ivr_calls_total") == 3
    assert metrics.by_labels("ivr_tickets_total", "channel") == {("phone",): 3, ("console",): 1}
    assert metrics.by_labels("ivr_tickets_in_phase", "phase") == {("received",): 3, ("closed",): 1}
    assert metrics.by_labels("ivr_outbox_work", "kind", "state") == {
        ("follow_up", state): 1 for state in ("waiting", "queued", "retrying", "running", "failed", "done")
    }
    assert metrics.value("ivr_job_failed_runs", kind="follow_up") == 4  # the done work's failure is over
    assert metrics.value("ivr_emails_refused_total", kind="confirmation") == 1
    assert metrics.by_labels("ivr_emails", "kind", "state") == {("confirmation", "refused"): 1, ("dispatch", "sent"): 1}
    # Confirmations of the last 24 h: 90 s and 2000 s after the call ended.
    assert metrics.value("ivr_confirmation_delay_seconds_bucket", le="60") == 0
    assert metrics.value("ivr_confirmation_delay_seconds_bucket", le="120") == 1
    assert metrics.value("ivr_confirmation_delay_seconds_bucket", le="3600") == 2
    assert metrics.value("ivr_confirmation_delay_seconds_bucket", le="+Inf") == 2
    assert metrics.value("ivr_confirmation_delay_seconds_gcount") == 2
    assert metrics.value("ivr_confirmation_delay_seconds_gsum") == pytest.approx(2090, abs=1)


def test_a_menu_that_fails_counts_a_fallback_answer(app, client, caller, directory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ivr.voice import webhooks

    def broken(turn):  # type: ignore[no-untyped-def]
        raise RuntimeError("the flow broke")

    monkeypatch.setattr(webhooks.FLOW, "answer", broken)
    assert "Record" in caller().dial_in().verbs()  # the apology, taking a message
    metrics = scrape(client)
    assert metrics.value("ivr_fallback_answers_total", endpoint="twilio.voice") == 1
    assert metrics.value("ivr_webhook_duration_seconds_count", endpoint="twilio.voice") == 1


def test_the_token_is_compared_in_constant_time(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import ivr.metrics

    compared: list[tuple[bytes, bytes]] = []
    real = ivr.metrics.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(ivr.metrics.hmac, "compare_digest", spy)
    client = create_app(replace(settings, metrics_token=Secret("s3cret"))).test_client()
    assert client.get("/metrics", headers={"Authorization": "Bearer guess"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert compared == [(b"Bearer guess", b"Bearer s3cret"), (b"Bearer s3cret", b"Bearer s3cret")]


def test_without_a_token_metrics_is_open(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/metrics").status_code == 200


def test_metrics_still_answers_when_the_database_does_not(settings: Settings) -> None:
    down = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/test"
    client = create_app(replace(settings, database_url=down)).test_client()
    metrics = scrape(client)
    assert metrics.value("ivr_database_up") == 0
    assert metrics.value("ivr_webhook_duration_seconds_count", endpoint="twilio.voice") == 0
    assert "hunter2" not in metrics.text


def test_healthz_is_ok_when_the_database_and_redis_answer(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_is_503_when_redis_does_not_answer(settings: Settings) -> None:
    closed = free_port()
    client = create_app(replace(settings, redis_url=f"redis://:hunter2@127.0.0.1:{closed}/0")).test_client()
    started = time.monotonic()
    response = client.get("/healthz")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "ok", "redis": "unreachable"}
    assert "hunter2" not in response.get_data(as_text=True) and str(closed) not in response.get_data(as_text=True)


@pytest.mark.parametrize("where", ["postgresql, closed port", "sqlite, missing file"])
def test_healthz_is_503_when_the_database_does_not_answer(settings: Settings, tmp_path: Path, where: str) -> None:
    if where.startswith("postgresql"):
        down = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/test"
    else:
        down = f"sqlite:///{tmp_path / 'gone' / 'ivr.db'}"
    client = create_app(replace(settings, database_url=down)).test_client()
    started = time.monotonic()
    response = client.get("/healthz")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "unreachable", "redis": "ok"}
    assert "hunter2" not in response.get_data(as_text=True)
    assert not (tmp_path / "gone" / "ivr.db").exists()  # the probe created no empty database
