"""What each webhook asks of the database: nothing when it only steers the menu, a read without any
lock when it only reads, one statement when it only stores what it was told, and a dropped
connection that costs the caller nothing."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import select

from storage.calls import CallTransaction
from storage.models import Call, Ticket
from tests.conftest import BASE_URL, GIULIA, Caller, Twiml, statements, statements_on, ticket_of

pytestmark = pytest.mark.usefixtures("directory", "clean_status_counters")

WRITES = ("INSERT", "UPDATE", "DELETE")


def writes(seen: list[str]) -> list[str]:
    return [s for s in seen if s.upper().startswith(WRITES)]


def at_main_menu(client) -> Caller:  # type: ignore[no-untyped-def]
    call = Caller(client, GIULIA)
    call.dial_in()
    menu = call.stay_silent()
    assert "Officine Brambilla" in menu.said()
    return call


def test_a_key_that_leads_to_the_next_menu_touches_no_database(app, client):
    call = at_main_menu(client)
    with statements(app) as seen:
        triage = call.press("1")
    assert "Se è tutto fermo, prema 1" in triage.said()
    assert seen == []


def test_the_language_and_the_attempts_travel_in_the_signed_step_url(app, client):
    call = Caller(client, GIULIA)
    call.dial_in()
    menu = call.press("9")  # English
    assert "lang=en" in menu.gather().get("action", "")
    with statements(app) as seen:
        again = call.press("7")  # no such option
        assert "try=1" in again.gather().get("action", "") and "lang=en" in again.gather().get("action", "")
        call.press("7")
        exhausted = call.press("7")  # the third wrong key: a message instead
    assert exhausted.find("Record") is not None
    assert "I will take a message instead" in exhausted.said()
    assert writes(seen) == []  # none of that needed the database
    with app.config["SESSIONMAKER"]() as session:
        assert session.scalars(select(Call.language).where(Call.call_sid == call.call_sid)).one() == "en"


def test_a_step_url_without_the_language_reads_it_from_the_stored_call(app, client):
    """A call in progress when the line was upgraded asks for URLs without `lang`: the stored call says."""
    call = Caller(client, GIULIA)
    call.dial_in()
    call.press("9")
    triage = call.answer(f"{BASE_URL}/twilio/step/main_menu", {"Digits": "1"})
    assert "If everything is stopped, press 1" in triage.said()
    assert "lang=en" in triage.gather().get("action", "")


def test_a_new_call_is_one_insert_and_a_menu_choice_one_write(app, client, database_url):
    call = Caller(client, GIULIA)
    with statements(app) as seen:
        call.dial_in()
    assert len(seen) == 1 and seen[0].upper().startswith("INSERT INTO CALLS")  # no BEGIN, no COMMIT around it
    call.stay_silent()
    call.press("1")
    with statements(app) as seen:
        call.press("2")  # triage: it is slow, not stopped
    assert len(seen) == 1 and len(writes(seen)) == 1
    with app.config["SESSIONMAKER"]() as session:
        assert session.scalars(select(Call.severity).where(Call.call_sid == call.call_sid)).one() == 2


def test_hearing_ones_own_tickets_only_reads_and_locks_nothing(app, client):
    """The reads take no lock and open no transaction; that the call heard a ticket's status (for
    statistics) is one write after them."""
    ticket_of(app, GIULIA)
    call = at_main_menu(client)
    with statements(app) as seen:
        mine = call.press("2")
    assert "una richiesta aperta" in mine.said() or "richieste aperte" in mine.said()
    [write] = writes(seen)
    assert "status_heard_at" in write and seen.index(write) > max(
        i for i, s in enumerate(seen) if s.upper().startswith("SELECT")
    )
    assert not any("FOR UPDATE" in s.upper() or s.upper().startswith("BEGIN") for s in seen)  # no transaction
    with statements(app) as seen:
        call.press("1")  # the next of her tickets: the call has heard a status already, nothing to write
    assert writes(seen) == []


def test_opening_a_ticket_writes_the_ticket_its_thread_its_work_and_the_call_once_each(app, client):
    call = at_main_menu(client)
    call.press("1")  # a new request
    call.press("1")  # everything is stopped
    call.speak()
    with statements(app) as seen:
        opened = call.press("1")  # yes, that is the message
    assert "numero" in opened.said()
    written = sorted(" ".join(s.upper().replace(" INTO ", " ").replace("(", " ").split()[:2]) for s in writes(seen))
    assert written == [
        "INSERT PENDING_WORK",
        "INSERT TICKETS",  # whole, its number (made from its id) included
        "INSERT TICKET_EVENTS",
        "UPDATE CALLS",  # the call points to its ticket
    ]
    assert not any("SAVEPOINT" in s.upper() for s in seen)
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.call_sid == call.call_sid)).one()
        assert ticket.number and ticket.number in "".join(ch for ch in opened.said() if ch.isdigit())
        assert [event.kind for event in ticket.events] == ["opened"]
        assert ticket.response_due_at is not None and ticket.urgency == "critical"


def test_a_read_only_webhook_is_answered_while_another_process_holds_the_sqlite_write_lock(app, client, settings):
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's database-wide write lock")
    ticket_of(app, GIULIA)
    call = at_main_menu(client)
    holder = app.config["ENGINE"].connect()
    holder.begin()  # BEGIN IMMEDIATE (storage.db): the worker, say, in the middle of a write
    holder.exec_driver_sql("UPDATE calls SET language = language WHERE call_sid = 'nobody'")
    answered: list[Twiml] = []
    try:
        reader = threading.Thread(target=lambda: answered.append(call.press("2")))
        reader.start()
        reader.join(timeout=10)  # a writer would wait for the lock for the whole busy timeout (30 s)
        assert answered and "prema" in answered[0].said()
    finally:
        holder.rollback()
        holder.close()


def test_sqlite_runs_in_wal_with_normal_sync_a_busy_timeout_and_rarer_checkpoints(app, settings):
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's settings")
    with app.config["ENGINE"].connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # A checkpoint every 4000 pages of log, not SQLite's 1000: a quarter as many webhooks wait for one.
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 4000


def _to_triage(app, call: Caller) -> Twiml:  # type: ignore[no-untyped-def]
    call.press("1")  # a new request: triage next, nothing stored yet
    return call.press("2")  # stores the severity: one statement on its own


def _to_own_tickets(app, call: Caller) -> Twiml:  # type: ignore[no-untyped-def]
    return call.press("2")  # reads the call and her open tickets, outside any transaction


def _to_confirmed_message(app, call: Caller) -> Twiml:  # type: ignore[no-untyped-def]
    call.press("1")
    call.press("1")
    call.speak()
    return call.press("1")  # opens the ticket: a transaction


@pytest.mark.parametrize(
    "webhook",
    [_to_triage, _to_own_tickets, _to_confirmed_message],
    ids=["a statement alone", "reads alone", "a transaction"],
)
def test_a_postgresql_connection_dropped_under_the_pool_costs_the_caller_nothing(app, client, settings, webhook):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's server-side disconnect")
    ticket_of(app, GIULIA)  # an open ticket of hers, for the status menu
    call = at_main_menu(client)
    pids = []
    for engine in (app.config["ENGINE"], app.config["NOTES_ENGINE"]):
        with engine.connect() as connection:  # the pooled connection the next webhook will get, of each engine
            pids.append(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar())
    with psycopg.connect(settings.database_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    answered = webhook(app, call)  # the stale connection fails, the webhook runs again
    assert "Ci scusi" not in answered.said()
    with app.config["SESSIONMAKER"]() as session:
        stored = session.scalars(select(Call).where(Call.call_sid == call.call_sid)).one()
    if webhook is _to_triage:
        assert stored.severity == 2 and answered.find("Record") is not None
    elif webhook is _to_own_tickets:
        assert "una richiesta aperta" in answered.said() and stored.status_heard_at is not None
    else:
        assert "numero" in answered.said() and stored.ticket_id is not None


def test_a_hung_up_call_is_ended_in_one_statement(app, client):
    call = at_main_menu(client)
    with statements(app) as seen:
        assert call.hang_up(duration=30).status_code == 204
    assert len(seen) == 1 and writes(seen) == seen  # no BEGIN, no COMMIT around it
    with app.config["SESSIONMAKER"]() as session:
        stored = session.scalars(select(Call).where(Call.call_sid == call.call_sid)).one()
        assert stored.call_status == "completed" and stored.duration == 30 and stored.ended_at is not None
        assert session.scalars(select(Ticket).where(Ticket.call_sid == call.call_sid)).first() is None
    with statements(app) as seen:
        assert call.hang_up(duration=30).status_code == 204  # Twilio repeats itself
    with app.config["SESSIONMAKER"]() as session:
        assert session.scalars(select(Call.duration).where(Call.call_sid == call.call_sid)).one() == 30


def test_a_call_that_ends_owing_its_ticket_gets_it_with_its_end(app, client):
    """A message recorded but never confirmed: the end is not the usual one-statement case, and the
    ticket is opened in the transaction that ends the call."""
    call = at_main_menu(client)
    call.press("1")  # a new request
    call.press("1")  # everything is stopped
    call.speak()  # ... and the caller hangs up instead of confirming the message
    with statements(app) as seen:
        assert call.hang_up(duration=40).status_code == 204
    assert len([s for s in writes(seen) if s.upper().startswith("INSERT INTO TICKETS")]) == 1
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.call_sid == call.call_sid)).one()
        stored = session.scalars(select(Call).where(Call.call_sid == call.call_sid)).one()
        assert ticket.voicemail and ticket.number and ticket.recording_sid == call.recording_sids[-1]
        assert stored.call_status == "completed" and stored.duration == 40 and stored.ticket_id == ticket.id


def test_only_what_the_line_may_lose_is_committed_without_waiting_for_the_disk(app, client, settings):
    """On PostgreSQL, notes (a new call's row, the moments kept for statistics, the end of a call that owes
    nothing) commit without waiting for the disk; what the caller chose or said, and the ticket, wait for it."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's synchronous_commit")
    notes, durable = app.config["NOTES_ENGINE"], app.config["ENGINE"]
    for engine, waits in ((notes, "off"), (durable, "on")):
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == waits
    ticket_of(app, GIULIA)  # an open ticket of hers, for the status menu
    call = Caller(client, GIULIA)
    with statements_on(notes) as noted, statements_on(durable) as waited:
        call.dial_in()
        call.stay_silent()  # identified by her caller ID
        assert "una richiesta aperta" in call.press("2").said()  # she hears her ticket's status
        call.press("*")  # back to the main menu
        call.press("1")  # a new request
        call.press("1")  # everything is stopped
        call.speak()
        assert "numero" in call.press("1").said()  # the ticket, opened
        assert call.hang_up(duration=60).status_code == 204
    kinds = [" ".join(s.upper().replace(" INTO ", " ").split()[:2]) for s in writes(noted)]
    assert kinds == ["INSERT CALLS", "INSERT CALLS", "UPDATE CALLS"]  # the call, a moment, the end
    start, moment, end = (s.partition(" VALUES ")[0].partition(" WHERE ")[0] for s in writes(noted))  # what is set
    assert "severity" not in start and "recording_sid" not in start and "language" in start
    assert "status_heard_at" in moment and "call_status" in end and "ticket_id" not in end + moment
    durable_writes = " ".join(writes(waited))
    for kept in ("contact_id", "severity", "recording_sid", "INSERT INTO tickets", "INSERT INTO pending_work"):
        assert kept in durable_writes
    with app.config["SESSIONMAKER"]() as session:
        stored = session.scalars(select(Call).where(Call.call_sid == call.call_sid)).one()
        assert stored.status_heard_at is not None and stored.call_status == "completed" and stored.ticket_id


def test_more_than_a_note_told_after_reading_for_reading_only_waits_for_the_disk(app, client, settings):
    """A webhook that read on the notes' pool and is then told something that is not a note stores it
    on the durable pool: no step does so today, and none that comes may lose the caller's choice."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's synchronous_commit")
    call = at_main_menu(client)
    notes, durable = app.config["NOTES_ENGINE"], app.config["ENGINE"]
    db = CallTransaction(durable, call.call_sid, lambda: GIULIA, notes_engine=notes)
    with statements_on(notes) as noted, statements_on(durable) as waited:
        try:
            assert db.call().contact_id is not None  # read for reading only
            db.change(language="en")
            db.commit()
        finally:
            db.close()
    assert writes(noted) == []
    assert len(writes(waited)) == 1 and "language" in writes(waited)[0]
    with app.config["SESSIONMAKER"]() as session:
        assert session.scalars(select(Call.language).where(Call.call_sid == call.call_sid)).one() == "en"


def test_no_round_trip_checks_a_pooled_connection_before_each_webhook(app):
    """No pre-ping: a dropped connection is handled by the retry (tested above), not paid for on every webhook."""
    assert app.config["ENGINE"].pool._pre_ping is False
