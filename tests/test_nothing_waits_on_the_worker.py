"""No caller waits on the worker: while a job is inside a slow step (Twilio's recording, its
"not ready" 404s, the transcription, the SMTP server, Redis), it holds no transaction, so
on SQLite, where a transaction would hold the one write lock, the next call is answered.

Each test holds the worker inside the step until the test releases it, and places a call
meanwhile. Without timing: the call must get the welcome menu, not the apology, and its
row must be there, while the job is provably still inside the step.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ivr.jobs import follow_up
from ivr.worker import relay
from storage.models import Call, PendingWork
from tests.conftest import GIULIA, STRANGER, phone_audio

pytestmark = pytest.mark.usefixtures("directory")


@pytest.fixture
def database_url(tmp_path) -> str:  # type: ignore[no-untyped-def, override]
    """SQLite only: the database whose single write lock makes a long transaction everybody's wait."""
    from storage.db import upgrade

    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    upgrade(url)
    return url


def open_ticket_with_audio(caller, recordings, tmp_path) -> str:  # type: ignore[no-untyped-def]
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1")
    sid = "RE" + uuid.uuid4().hex
    words = "La stampante e la posta sono bloccate, non funziona niente."
    recordings.files[sid] = phone_audio(tmp_path / f"{sid}.wav", words, "it")
    call.speak(recording_url=recordings.url(sid), sid=sid)
    call.press("1")
    return sid


class Inside:
    """Wraps a slow step to know that the job is still inside it (it has not returned or raised)."""

    def __init__(self, monkeypatch, owner, name: str) -> None:  # type: ignore[no-untyped-def]
        self.left = threading.Event()
        real = getattr(owner, name)

        def step(*args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return real(*args, **kwargs)
            finally:
                self.left.set()

        monkeypatch.setattr(owner, name, step)

    @property
    def still(self) -> bool:
        return not self.left.is_set()


def in_background(target) -> threading.Thread:  # type: ignore[no-untyped-def]
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def assert_a_new_call_is_answered(caller, app) -> None:  # type: ignore[no-untyped-def]
    """A stranger dials in: the welcome menu, and the call's row committed."""
    call = caller(STRANGER)
    said = call.dial_in().said()
    assert "Benvenuto" in said or "assistenza" in said.lower(), said
    assert "Ci scusi" not in said  # not the apology of a webhook that failed on a locked database
    with app.config["SESSIONMAKER"]() as session:
        assert session.scalars(select(Call).where(Call.call_sid == call.call_sid)).one()


def test_a_call_is_answered_while_the_worker_waits_for_twilios_recording(
    app, caller, jobs, recordings, tmp_path, monkeypatch
):
    open_ticket_with_audio(caller, recordings, tmp_path)
    download = Inside(monkeypatch, follow_up, "download_recording")
    [work] = jobs.work("follow_up")
    recordings.not_ready = 1  # Twilio's "not ready yet" first: the job waits, then asks again
    gate = recordings.hold()
    job = in_background(lambda: jobs.run(work.id))
    assert recordings.entered.wait(30), "the job never reached the recording"

    assert_a_new_call_is_answered(caller, app)
    assert download.still  # the call did not wait for the download to end

    gate.set()
    job.join(60)
    assert any(e.kind == "recording" for e in ticket_events(app))


def test_a_call_is_answered_while_the_worker_transcribes(app, caller, jobs, recordings, tmp_path, monkeypatch):
    open_ticket_with_audio(caller, recordings, tmp_path)
    entered, gate = threading.Event(), threading.Event()
    real_engine_for = follow_up.engine_for

    class HeldEngine:
        def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
            self.engine = engine

        def transcribe(self, audio, language):  # type: ignore[no-untyped-def]
            entered.set()
            gate.wait(60)
            return self.engine.transcribe(audio, language)

    monkeypatch.setattr(follow_up, "engine_for", lambda *args: HeldEngine(real_engine_for(*args)))
    [work] = jobs.work("follow_up")
    job = in_background(lambda: jobs.run(work.id))
    assert entered.wait(60), "the job never reached the transcription"

    assert_a_new_call_is_answered(caller, app)
    assert job.is_alive()  # the held transcription returns only when the gate opens

    gate.set()
    job.join(120)
    assert "stampante" in " ".join(e.facts["words"] for e in ticket_events(app) if e.kind == "transcript").lower()


def test_a_call_is_answered_while_the_worker_talks_to_a_slow_smtp_server(
    app, caller, jobs, recordings, tmp_path, monkeypatch
):
    open_ticket_with_audio(caller, recordings, tmp_path)
    jobs.run_all("follow_up")
    sending = Inside(monkeypatch, follow_up.mail, "send")
    confirmation = jobs.work("email")[0]
    smtp = jobs.smtp
    gate = smtp.hold()
    job = in_background(lambda: jobs.run(confirmation.id))
    assert smtp.entered.wait(30), "the job never reached the SMTP server"

    assert_a_new_call_is_answered(caller, app)
    assert sending.still  # the call did not wait for the SMTP conversation to end
    # The other emails do not wait for this one either.
    others = [w for w in jobs.work("email") if w.id != confirmation.id]
    assert [jobs.run(w.id) for w in others] == ["done"] * len(others)

    gate.set()
    job.join(60)
    assert len(smtp.messages) == 1 + len(others)


class HangingRedis:
    """A server that accepts connections on Redis's protocol and never answers."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.connections: list[socket.socket] = []
        in_background(self._accept)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)  # kept open, never read or answered

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def hanging_redis() -> Iterator[HangingRedis]:
    server = HangingRedis()
    yield server
    server.close()


def test_a_redis_that_never_answers_holds_neither_a_call_nor_the_relays_transaction(
    app, settings, caller, hanging_redis
):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")
    stuck = dataclasses.replace(settings, redis_url=hanging_redis.url)
    outcome: list[BaseException] = []

    def relay_round() -> None:
        try:
            relay.relay_once(stuck, app.config["SESSIONMAKER"], relay.job_queue(stuck))
        except BaseException as error:
            outcome.append(error)

    relay_thread = in_background(relay_round)
    while not hanging_redis.connections and relay_thread.is_alive():
        relay_thread.join(0.05)
    assert hanging_redis.connections, "the relay never reached Redis"

    assert_a_new_call_is_answered(caller, app)
    assert relay_thread.is_alive()  # still waiting for Redis, with its claim committed

    relay_thread.join(30)
    assert not relay_thread.is_alive(), "a Redis that never answers held the relay"
    assert outcome and "Timeout" in type(outcome[0]).__name__
    with app.config["SESSIONMAKER"]() as session:
        [work] = session.scalars(select(PendingWork))
        assert work.enqueued_at is None and work.runs == 0  # put back for the next round


def test_the_status_menu_answers_when_redis_never_answers(app, caller, hanging_redis, monkeypatch):
    from ivr import create_app

    stuck_app = create_app(dataclasses.replace(app.config["SETTINGS"], redis_url=hanging_redis.url))
    stuck_app.config["TESTING"] = True
    try:
        from tests.conftest import Caller

        call = Caller(stuck_app.test_client(), STRANGER)
        call.dial_in(), call.stay_silent(), call.stay_silent()
        said = call.press("2").said()  # status: the failure counters cannot be read
        assert "Ci scusi" not in said and said
    finally:
        stuck_app.config["ENGINE"].dispose()


def ticket_events(app) -> list:  # type: ignore[no-untyped-def]
    from storage.models import Ticket

    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).order_by(Ticket.id)).first()
        return list(ticket.events)
