"""The fallback spool loses nothing and repeats nothing: entries that can never become
tickets go to dead/ and are reported once, two processes ingesting one spool make each
ticket once without an error, and a web machine ingests what it spooled itself."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivr import create_app
from ivr.voice import spool
from storage.db import make_engine, make_sessionmaker
from storage.models import Email, Ticket
from tests.conftest import BASE_URL, DISPATCH, GIULIA, STRANGER, Caller, sign, with_settings
from tests.test_fallback import fallback_message as message_taken
from tests.test_fallback import recording_sid

pytestmark = pytest.mark.usefixtures("directory")

PROJECT = Path(__file__).resolve().parent.parent
BROKEN_DATABASE = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def fallback_message(call_sid: str | None = None, from_: str = GIULIA) -> dict[str, str]:
    return message_taken(call_sid or "CA" + uuid.uuid4().hex, recording_sid(), from_)


def ticket_count(app) -> int:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        return session.scalar(select(func.count()).select_from(Ticket)) or 0


def dead_letter_emails(app) -> list[Email]:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        return list(session.scalars(select(Email).where(Email.kind == "spool_dead_letter")))


def ingest(app) -> int:  # type: ignore[no-untyped-def]
    settings = app.config["SETTINGS"]
    report = spool.dead_letter_reporter(settings, app.config["SESSIONMAKER"])
    return spool.ingest(settings.spool_dir, app.config["SESSIONMAKER"], report_dead=report)


def never_ingestible(settings, database_url: str) -> Path:  # type: ignore[no-untyped-def]
    """An entry that fails whenever it is tried: an over-long CallSid where the database checks
    lengths (PostgreSQL), a form that is no form at all elsewhere."""
    if database_url.startswith("postgresql"):
        return spool.keep(settings.spool_dir, "fallback_message", fallback_message("CA" + "9" * 200))
    path = spool.keep(settings.spool_dir, "fallback_message", fallback_message())
    path.write_text('{"kind": "fallback_message", "form": "not a form"}', encoding="utf-8")
    return path


def test_an_entry_that_can_never_be_ingested_goes_to_dead_letters_and_is_reported_once(
    app, settings, database_url, caplog
):
    with_settings(app, dispatch_email=DISPATCH)
    never_ingestible(settings, database_url)
    good = spool.keep(settings.spool_dir, "fallback_message", fallback_message())
    caplog.set_level(logging.WARNING, logger="ivr.voice.spool")

    for _ in range(spool.MAX_TRIES + 3):
        ingest(app)

    assert not good.exists() and ticket_count(app) == 1  # the good one was not held up
    assert list(settings.spool_dir.glob("*.json")) == []
    [dead] = list((settings.spool_dir / spool.DEAD).glob("*.json"))
    assert stat.S_IMODE(dead.stat().st_mode) == 0o600
    gave_up = [r for r in caplog.records if "could not be ingested after" in r.getMessage()]
    assert len(gave_up) == 1  # logged once, not every round
    [report] = dead_letter_emails(app)
    assert report.to_address == DISPATCH and dead.name in report.body


def test_an_entry_is_not_counted_as_failing_while_the_database_is_down(settings):
    path = spool.keep(settings.spool_dir, "fallback_message", fallback_message())
    engine = make_engine(BROKEN_DATABASE)
    try:
        for _ in range(spool.MAX_TRIES + 2):
            assert spool.ingest(settings.spool_dir, make_sessionmaker(engine)) == 0
    finally:
        engine.dispose()
    assert path.exists() and not (settings.spool_dir / spool.DEAD).exists()


def test_spool_files_are_readable_by_the_service_user_only(settings):
    path = spool.keep(settings.spool_dir, "fallback_message", fallback_message())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.spool_dir.stat().st_mode) == 0o700


INGESTER = """
import logging, sys
from pathlib import Path
from ivr.voice import spool
from storage.db import make_engine, make_sessionmaker
logging.basicConfig(level=logging.WARNING)
make_session = make_sessionmaker(make_engine(sys.argv[1]))
sys.stdin.readline()  # both start together
print(spool.ingest(Path(sys.argv[2]), make_session))
"""


def test_two_processes_ingesting_one_spool_make_each_ticket_once_without_errors(app, settings):
    entries = 30
    for _ in range(entries):
        spool.keep(settings.spool_dir, "fallback_message", fallback_message(from_=STRANGER))
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    command = [sys.executable, "-c", INGESTER, settings.database_url, str(settings.spool_dir)]
    ingesters = [
        subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for process in ingesters:
        process.stdin.write(b"go\n")  # type: ignore[union-attr]
        process.stdin.flush()  # type: ignore[union-attr]
    outputs = [process.communicate(timeout=120) for process in ingesters]

    assert [process.returncode for process in ingesters] == [0, 0]
    assert sum(int(out) for out, _ in outputs) == entries  # each entry ingested by exactly one of them
    for _, errors in outputs:
        assert b"Traceback" not in errors and b"ERROR" not in errors and b"could not ingest" not in errors
    assert ticket_count(app) == entries and list(settings.spool_dir.glob("*.json")) == []


def test_a_web_machine_ingests_what_it_spooled_once_its_database_answers_again(app, settings):
    web = create_app(dataclasses.replace(settings, database_url=BROKEN_DATABASE, redis_url="redis://127.0.0.1:1/0"))
    web.config["TESTING"] = True
    client = web.test_client()
    try:
        params = fallback_message()
        path = "/twilio/fallback/message"
        answer = client.post(path, data=params, headers={"X-Twilio-Signature": sign(BASE_URL + path, params)})
        assert answer.status_code == 200 and spool.waiting(settings.spool_dir)

        # The database answers again (this machine runs no worker): the next webhook's commit brings it in.
        web.config["ENGINE"].dispose()
        for name in ("ENGINE", "NOTES_ENGINE", "SESSIONMAKER"):
            web.config[name] = app.config[name]
        next_call = Caller(client, STRANGER)
        response = next_call.post(f"{BASE_URL}/twilio/voice", {"CallStatus": "ringing"})
        assert response.status_code == 200
        response.close()  # as the WSGI server does once the answer is sent

        assert not spool.waiting(settings.spool_dir)
        with app.config["SESSIONMAKER"]() as session:
            ticket = session.scalars(select(Ticket).where(Ticket.call_sid == params["CallSid"])).one()
            assert ticket.voicemail
    finally:
        web.config["ENGINE"] = web.config["NOTES_ENGINE"] = None
