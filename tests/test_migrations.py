"""Alembic owns the schema: the migrations build exactly what the models describe."""

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session

from helpdesk import thread
from storage.db import alembic_config, upgrade
from storage.models import Base, Ticket, TicketEvent


def test_migrations_match_the_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_an_entry_written_before_facts_were_kept_still_says_its_sentence(database_url):
    """0003 moves each entry's sentence into its facts, as a note said as it is in every language."""
    command.downgrade(alembic_config(database_url), "0002")
    engine = create_engine(database_url)
    at = datetime(2026, 11, 30, 18, 39, tzinfo=UTC)
    with engine.begin() as connection:
        ticket_id = connection.execute(
            text(
                "INSERT INTO tickets (number, status, urgency, channel, language, needs_match, voicemail,"
                " created_at, updated_at) VALUES ('1000015', 'received', 'high', 'phone', 'it', false, false, :at, :at)"
                " RETURNING id"
            ),
            {"at": at},
        ).scalar_one()
        connection.execute(
            text("INSERT INTO ticket_events (ticket_id, at, kind, text) VALUES (:ticket, :at, 'opened', :sentence)"),
            {"ticket": ticket_id, "at": at, "sentence": OLD_OPENING},
        )
    engine.dispose()

    upgrade(database_url)

    engine = create_engine(database_url)
    with Session(engine) as session:
        [event] = session.scalars(select(TicketEvent)).all()
        assert (event.kind, event.facts) == ("opened", {"note": OLD_OPENING})
        assert thread.render(event, "it") == thread.render(event, "en") == OLD_OPENING
    engine.dispose()


ENTRY = "(:t, :at, 'note', '{}', :u)"
OLD_OPENING = "Ticket opened by the caller on the line, provisional urgency high. Caller's triage: it partly works."


def test_0007_adds_the_sla_clocks_and_fills_in_what_the_thread_already_knows(database_url):
    """The first response is the first entry a person wrote; the restore, when a resolved ticket was resolved;
    the deadlines stay empty (counted from the SLA table when read). Down and up again."""
    command.downgrade(alembic_config(database_url), "0006")
    engine = create_engine(database_url)
    opened = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)
    answered, resolved = opened.replace(hour=17), opened.replace(hour=18)
    with engine.begin() as connection:
        user = connection.execute(
            text("INSERT INTO users (name, email, role) VALUES ('Dora', 'dora@example.it', 'dispatcher') RETURNING id")
        ).scalar_one()
        ids = []
        for number, resolved_at in (("1000015", resolved), ("1000023", None)):
            ids.append(
                connection.execute(
                    text(
                        "INSERT INTO tickets (number, status, urgency, channel, language, needs_match, voicemail,"
                        " created_at, updated_at, resolved_at) VALUES (:number, :status, 'high', 'phone', 'it',"
                        " false, false, :at, :at, :resolved_at) RETURNING id"
                    ),
                    {
                        "number": number,
                        "status": "resolved" if resolved_at else "received",
                        "at": opened,
                        "resolved_at": resolved_at,
                    },
                ).scalar_one()
            )
        for at, user_id in ((opened, None), (resolved, user), (answered, user)):
            connection.execute(
                text(f"INSERT INTO ticket_events (ticket_id, at, kind, facts, user_id) VALUES {ENTRY}"),
                {"t": ids[0], "at": at, "u": user_id},
            )
    engine.dispose()

    upgrade(database_url)

    engine = create_engine(database_url)
    with Session(engine) as session:
        first, untouched = (session.get(Ticket, ticket_id) for ticket_id in ids)
        assert first is not None and untouched is not None
        assert (first.first_response_at, first.restored_at) == (answered, resolved)
        assert (first.response_due_at, first.restore_due_at) == (None, None)
        assert (untouched.first_response_at, untouched.restored_at) == (None, None)
    engine.dispose()

    command.downgrade(alembic_config(database_url), "0006")
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert "first_response_at" not in {c["name"] for c in inspect(connection).get_columns("tickets")}
        assert "ix_tickets_created_at" not in {i["name"] for i in inspect(connection).get_indexes("tickets")}
    engine.dispose()
    upgrade(database_url)
    test_migrations_match_the_models(database_url)
