"""storage.statements: a statement handed to the driver stores and reads what SQLAlchemy's own execute would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, Table, bindparam, event, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from storage.db import make_engine
from storage.models import Ticket, TicketEvent, utcnow
from storage.statements import Alone, Statement, one_of, run

tickets: Table = Ticket.__table__  # type: ignore[assignment]
events: Table = TicketEvent.__table__  # type: ignore[assignment]

# A ticket left to its columns' defaults (status, channel, language, voicemail, created_at, updated_at).
NEW_TICKET = Statement(
    insert(tickets).values(urgency=bindparam("urgency"), call_sid=bindparam("sid")).returning(tickets.c.id)
)
ADD_EVENT = Statement(
    insert(events)
    .values(
        ticket_id=bindparam("ticket_id"), kind=bindparam("kind"), facts=bindparam("facts", type_=events.c.facts.type)
    )
    .inline()
)
THREAD = Statement(
    select(events.c.kind, events.c.facts, events.c.at).where(events.c.ticket_id == bindparam("ticket_id"))
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_an_insert_gets_the_defaults_sqlalchemy_would_give_it(engine):
    before = utcnow()
    with engine.begin() as connection:
        ((ticket_id,),) = run(connection, NEW_TICKET, {"urgency": "high", "sid": "CA1"})
    with engine.connect() as connection:
        row = connection.execute(select(tickets).where(tickets.c.id == ticket_id)).mappings().one()
    assert (row["status"], row["channel"], row["language"], row["voicemail"]) == ("received", "phone", "it", False)
    assert row["created_at"] >= before and row["created_at"].tzinfo is not None


def test_an_update_sets_the_columns_sqlalchemy_updates_on_its_own(engine):
    with engine.begin() as connection:
        ((ticket_id,),) = run(connection, NEW_TICKET, {"urgency": "high", "sid": "CA1"})
        opened = connection.execute(select(tickets.c.updated_at).where(tickets.c.id == ticket_id)).scalar_one()
    set_number = Statement(update(tickets).where(tickets.c.id == bindparam("id")).values(number=bindparam("number")))
    with engine.begin() as connection:
        run(connection, set_number, {"id": ticket_id, "number": "AB-1234"})
    with engine.connect() as connection:
        number, updated = connection.execute(select(tickets.c.number, tickets.c.updated_at)).one()
    assert number == "AB-1234" and updated > opened


def test_rows_read_back_as_sqlalchemy_reads_them(engine):
    """JSON facts and UTC moments, written on the driver and read both ways, are the same values."""
    with engine.begin() as connection:
        ((ticket_id,),) = run(connection, NEW_TICKET, {"urgency": "low", "sid": "CA2"})
        entries = [{"ticket_id": ticket_id, "kind": "opened", "facts": {"by": "line", "severity": 1}}]
        entries.append({"ticket_id": ticket_id, "kind": "no_audio", "facts": {}})
        run(connection, ADD_EVENT, entries)
    with engine.connect() as connection:
        through_driver = run(connection, THREAD, {"ticket_id": ticket_id})
        through_sqlalchemy = [tuple(row) for row in connection.execute(THREAD.statement, {"ticket_id": ticket_id})]
    assert through_driver == through_sqlalchemy
    assert [(kind, facts) for kind, facts, _ in through_driver] == [
        ("opened", {"by": "line", "severity": 1}),
        ("no_audio", {}),
    ]
    assert all(at.tzinfo is not None and at <= datetime.now(UTC) for _, _, at in through_driver)


def test_fixed_values_of_a_statement_are_compiled_with_it(engine):
    with engine.begin() as connection:
        for sid, urgency in (("CA1", "low"), ("CA2", "high"), ("CA3", "critical")):
            run(connection, NEW_TICKET, {"urgency": urgency, "sid": sid})
    urgent = Statement(select(tickets.c.call_sid).where(one_of(tickets.c.urgency, ("high", "critical"))))
    with engine.connect() as connection:
        assert sorted(sid for (sid,) in run(connection, urgent)) == ["CA2", "CA3"]


def test_a_statement_expanded_at_each_run_is_refused():
    expanding = Statement(select(tickets.c.id).where(tickets.c.urgency.in_(bindparam("urgencies", expanding=True))))
    with pytest.raises(ValueError, match="not a statement to compile once"):
        expanding.compiled(make_engine("sqlite://").dialect)


def test_a_statement_the_database_refuses_raises_sqlalchemys_error_with_its_parameters_hidden(engine):
    with engine.begin() as connection:
        run(connection, NEW_TICKET, {"urgency": "low", "sid": "CA-secret-sid"})
    with engine.connect() as connection, pytest.raises(IntegrityError) as refused:
        run(connection, NEW_TICKET, {"urgency": "low", "sid": "CA-secret-sid"})  # the CallSid is unique
    with Alone(engine) as alone, pytest.raises(DBAPIError) as refused_alone:
        run(alone, NEW_TICKET, {"urgency": "low", "sid": "CA-secret-sid"})
    assert isinstance(refused_alone.value, IntegrityError)
    for error in (refused.value, refused_alone.value):  # (PostgreSQL's own message may name the key)
        assert "INSERT INTO tickets" in str(error) and "SQL parameters hidden" in str(error)


def test_a_statement_alone_commits_itself_and_leaves_the_pool_transactional(engine):
    with Alone(engine) as alone:
        run(alone, NEW_TICKET, {"urgency": "low", "sid": "CA4"})
        driver_connection = alone.connection.driver_connection
    with engine.connect() as connection:
        assert connection.connection.driver_connection is driver_connection  # the same one, back in the pool
        assert connection.execute(select(tickets.c.call_sid)).scalars().all() == ["CA4"]
        run(connection, NEW_TICKET, {"urgency": "low", "sid": "CA5"})
        connection.rollback()  # a transaction as usual: rolled back, nothing stored
    with engine.connect() as connection:
        assert connection.execute(select(tickets.c.call_sid)).scalars().all() == ["CA4"]


def test_listeners_of_the_engine_see_each_statement_as_the_driver_gets_it(engine):
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.begin() as connection:
            run(connection, NEW_TICKET, {"urgency": "low", "sid": "CA6"})
        with Alone(engine) as alone:
            run(alone, NEW_TICKET, {"urgency": "low", "sid": "CA7"})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    inserts = [s for s in seen if s.startswith("INSERT INTO tickets")]
    assert inserts == [NEW_TICKET.compiled(engine.dialect).sql] * 2
