"""Nothing goes twice, nothing is lost: a job owns its work through a lease with a token,
renewed while it runs; a job that outlived its lease writes and sends nothing; a recording
that arrives while the follow-up runs is not lost; a job that keeps dying stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from helpdesk import thread
from ivr.jobs import follow_up
from storage import outbox
from storage.models import Email, PendingWork, Ticket
from tests.conftest import GIULIA, phone_audio, with_settings, worker_environment

pytestmark = pytest.mark.usefixtures("directory")

PROJECT = Path(__file__).resolve().parent.parent
WORDS = "La stampante e la posta sono bloccate, non funziona niente."


def open_ticket_with_audio(caller, recordings, tmp_path):  # type: ignore[no-untyped-def]
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1")
    sid = "RE" + uuid.uuid4().hex
    recordings.files[sid] = phone_audio(tmp_path / f"{sid}.wav", WORDS, "it")
    call.speak(recording_url=recordings.url(sid), sid=sid)
    call.press("1")
    return call


def the_ticket(app) -> Ticket:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket)).one()
        _ = ticket.events
        return ticket


def kinds(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [event.kind for event in the_ticket(app).events]


class HeldTranscription:
    """The first transcription waits until released; later ones run straight through."""

    def __init__(self, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        self.entered, self.gate = threading.Event(), threading.Event()
        real_engine_for, held = follow_up.engine_for, self

        class Engine:
            def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
                self.engine = engine

            def transcribe(self, audio, language):  # type: ignore[no-untyped-def]
                if not held.entered.is_set():
                    held.entered.set()
                    held.gate.wait(60)
                return self.engine.transcribe(audio, language)

        monkeypatch.setattr(follow_up, "engine_for", lambda *args: Engine(real_engine_for(*args)))


def in_background(target) -> tuple[threading.Thread, list]:  # type: ignore[no-untyped-def]
    result: list = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def steal_lease(app, work_id: int) -> None:  # type: ignore[no-untyped-def]
    """What happens when a job outlives its lease: the row is free for another job."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        session.execute(
            update(PendingWork).where(PendingWork.id == work_id).values(lease_token="expired", lease_until=None)
        )


def test_a_long_transcription_keeps_its_lease_so_no_second_job_starts(
    app, caller, jobs, recordings, tmp_path, monkeypatch
):
    with_settings(app, lease_seconds=1)
    open_ticket_with_audio(caller, recordings, tmp_path)
    held = HeldTranscription(monkeypatch)
    [work] = jobs.work("follow_up")
    job, result = in_background(lambda: jobs.run(work.id))
    assert held.entered.wait(60)

    with app.config["SESSIONMAKER"]() as session:
        first_expiry = session.get(PendingWork, work.id).lease_until
    # Wait, by the database's clock, until the lease as first taken has run out.
    while True:
        with app.config["SESSIONMAKER"]() as session:
            if outbox.database_now(session) > first_expiry + timedelta(seconds=1):
                break
        time.sleep(0.1)
    assert jobs.run(work.id) == "skipped"  # renewed by the heartbeat: still the first job's

    held.gate.set()
    job.join(120)
    assert result == ["done"]
    assert kinds(app).count("transcript") == 1


def test_a_job_that_outlived_its_lease_writes_nothing(app, caller, jobs, recordings, tmp_path, monkeypatch):
    open_ticket_with_audio(caller, recordings, tmp_path)
    held = HeldTranscription(monkeypatch)
    [work] = jobs.work("follow_up")
    slow, slow_result = in_background(lambda: jobs.run(work.id))
    assert held.entered.wait(60)

    steal_lease(app, work.id)
    assert jobs.run(work.id) == "done"  # another job does the whole follow-up meanwhile

    held.gate.set()
    slow.join(120)
    assert slow_result == ["lost"]
    assert kinds(app).count("transcript") == 1 and kinds(app).count("recording") == 1
    jobs.run_all("email")
    assert len(jobs.smtp.messages) == 3  # the confirmation, the referent's copy, the dispatchers': once each


def test_an_email_is_claimed_once_so_two_jobs_never_send_it_twice(app, caller, jobs, recordings, tmp_path):
    open_ticket_with_audio(caller, recordings, tmp_path)
    jobs.run_all("follow_up")
    confirmation = jobs.work("email")[0]
    gate = jobs.smtp.hold()
    slow, slow_result = in_background(lambda: jobs.run(confirmation.id))
    assert jobs.smtp.entered.wait(30)  # the first job is inside the SMTP conversation

    steal_lease(app, confirmation.id)
    with pytest.raises(follow_up.EmailInFlight):
        jobs.run(confirmation.id)  # a second job finds the email claimed

    gate.set()
    slow.join(60)
    assert slow_result == ["lost"]  # it sent the email, but the work is no longer its own
    jobs.run_all("email")  # the retry of the work finds the email sent
    with app.config["SESSIONMAKER"]() as session:
        email = session.get(Email, confirmation.email_id)
        assert email.sent_at is not None
    assert len(jobs.smtp.to(email.to_address)) == 1
    assert len(jobs.smtp.messages) == 3


def test_a_recording_that_arrives_while_the_follow_up_runs_is_not_lost(
    app, caller, jobs, recordings, tmp_path, monkeypatch
):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1")
    call.stay_silent(), call.stay_silent()  # twice silent: a ticket without audio, so far
    [work] = jobs.work("follow_up")

    entered, gate = threading.Event(), threading.Event()
    real_transcribe = follow_up._transcribe

    def held_transcribe(*args):  # type: ignore[no-untyped-def]
        if not entered.is_set():
            entered.set()
            gate.wait(60)
        return real_transcribe(*args)

    monkeypatch.setattr(follow_up, "_transcribe", held_transcribe)
    job, result = in_background(lambda: jobs.run(work.id))
    assert entered.wait(60)

    sid = "RE" + uuid.uuid4().hex  # the recording of the call arrives now
    recordings.files[sid] = phone_audio(tmp_path / f"{sid}.wav", WORDS, "it")
    assert call.recording_ready(sid, recordings.url(sid)).status_code == 204

    gate.set()
    job.join(60)
    assert result == ["again"]  # the version moved on while it ran: not marked done
    jobs.run_all()
    ticket = the_ticket(app)
    assert ticket.recording_path and "stampante" in (ticket.transcript or "").lower()
    with app.config["SESSIONMAKER"]() as session:
        assert session.get(PendingWork, work.id).done_at is not None
    assert len(jobs.smtp.messages) == 3  # the emails, queued by the first run, went once


def test_a_job_that_keeps_getting_killed_stops_and_shows_in_retry_failed(app, settings, caller, recordings, tmp_path):
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the same on PostgreSQL; kills take a while")
    with_settings(app, lease_seconds=1)
    open_ticket_with_audio(caller, recordings, tmp_path)
    with app.config["SESSIONMAKER"]() as session:
        work_id = session.scalars(select(PendingWork.id)).one()
    env = worker_environment(settings, recordings, LEASE_SECONDS="1")
    run = [sys.executable, "-c", f"from ivr.jobs.follow_up import run_pending_work; print(run_pending_work({work_id}))"]

    for _ in range(outbox.MAX_STARTS):  # each run dies inside the download, as if out of memory
        recordings.hold()
        job = subprocess.Popen(run, env=env, cwd=PROJECT, stdout=subprocess.PIPE, start_new_session=True)
        assert recordings.entered.wait(60)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(10)
        time.sleep(1.2)  # the dead run's lease runs out

    last = subprocess.run(run, env=env, cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert last.stdout.strip() == "failed", last.stderr
    ticket = the_ticket(app)
    [failed] = [thread.render(e, "en") for e in ticket.events if e.kind == "follow_up_failed"]
    assert "never ended" in failed and "retry-failed" in failed
    assert "1 failed follow-up(s) will run again" in app.test_cli_runner().invoke(args=["retry-failed"]).output
