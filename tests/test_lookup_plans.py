"""The line's and the console's lookups read tickets through an index, so they stay flat as tickets pile up.

No timing: the statements the code runs are captured as they go to the database, and the
database's own planner is asked how it would run them (`EXPLAIN QUERY PLAN` on SQLite,
`EXPLAIN` on PostgreSQL, with sequential scans priced out so the choice is about the index).
benchmarks/lookups.py times the same lookups at a thousand and a million tickets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, event, select
from sqlalchemy.orm import Session

from benchmarks.lookups import add_other_contacts, fill_tickets
from helpdesk.phases import OPEN_PHASES
from storage.models import Contact, Ticket
from storage.queue import QueueFilters, get_open_tickets
from storage.tickets import get_ticket_by_number, get_tickets_of_caller, get_tickets_of_contact
from tests.conftest import GIULIA, Caller, statements

pytestmark = pytest.mark.usefixtures("directory")


@pytest.fixture
def filled(app) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    """Two thousand tickets of other callers, then a session whose connection prices sequential scans out."""
    engine = app.config["ENGINE"]
    with app.config["SESSIONMAKER"]() as session, session.begin():
        first_contact_id = add_other_contacts(session)
    fill_tickets(engine, 1, 2_000, first_contact_id)
    with Session(engine) as session:
        if engine.dialect.name == "postgresql":
            session.execute(select(1))  # the connection, for SET in the same transaction
            session.connection().exec_driver_sql("SET LOCAL enable_seqscan = off")
        yield session


def statements_of(session: Session, lookup: Callable[[Session], Any]) -> list[tuple[str, Any]]:
    """The SQL and parameters that `lookup` sends to the database, as the driver gets them."""
    sent: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", keep)
    try:
        lookup(session)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    return sent


def plan_of(connection: Connection, statement: str, parameters: Any) -> str:
    """The planner's plan for the statement, as text."""
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        return "\n".join(row[-1] for row in rows)
    return "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))


def tickets_read_through(plan: str, dialect: str) -> str:
    """How the plan reads the tickets table: the line that names it."""
    if dialect == "sqlite":
        lines = [line for line in plan.splitlines() if line.split()[1:2] == ["tickets"]]
    else:
        lines = [line for line in plan.splitlines() if " on tickets" in line or "on ix_tickets" in line]
    assert lines, plan
    return "\n".join(lines)


def contact_id_of(session: Session, phone: str) -> int:
    return session.scalars(select(Contact.id).where(Contact.phone == phone)).one()


LOOKUPS: dict[str, tuple[Callable[[Session], Any], str | None]] = {
    # name: (the lookup as the code runs it, the index it must use; None: the ticket number's unique index)
    "a ticket by number": (lambda s: get_ticket_by_number(s, "1000015"), None),
    "a caller's tickets": (lambda s: get_tickets_of_caller(s, GIULIA), "ix_tickets_caller"),
    "a contact's open tickets": (
        lambda s: get_tickets_of_contact(s.connection(), contact_id_of(s, GIULIA), OPEN_PHASES),
        "ix_tickets_contact_id_status",
    ),
    "the queue's default query": (
        lambda s: get_open_tickets(s, OPEN_PHASES, QueueFilters()),
        "ix_tickets_status_urgency",
    ),
}


@pytest.mark.parametrize("lookup", LOOKUPS)
def test_the_lookup_reads_tickets_through_an_index(filled: Session, lookup: str) -> None:
    run, index = LOOKUPS[lookup]
    dialect = filled.get_bind().dialect.name
    sent = [(sql, parameters) for sql, parameters in statements_of(filled, run) if "FROM tickets" in sql]
    assert len(sent) == 1, sent

    how = tickets_read_through(plan_of(filled.connection(), *sent[0]), dialect)

    if dialect == "sqlite":
        assert how.split()[0] == "SEARCH" and "INDEX" in how, how  # not SCAN: the whole table
    else:
        assert "Seq Scan" not in how and "Index" in how, how
    if index is not None:
        assert index in how, how
    else:
        assert ("(number=?)" if dialect == "sqlite" else "tickets_number_key") in how, how


def test_the_status_menu_reads_a_callers_open_tickets_once(app, client) -> None:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session, session.begin():
        contact_id = contact_id_of(session, GIULIA)
        session.add_all(
            Ticket(number=f"900000{i}", urgency="high", status="diagnostics", contact_id=contact_id, caller=GIULIA)
            for i in range(2)
        )
    call = Caller(client, GIULIA)
    call.dial_in()
    call.stay_silent()
    with statements(app) as seen:
        answer = call.press("2")  # the status menu: decides on the list, then reads it out
    reads = [statement for statement in seen if "FROM tickets" in statement and "contact_id" in statement]
    assert "2 richieste aperte" in answer.said(), answer.said()
    assert len(reads) == 1, reads
