"""Alembic owns the schema: the migrations build exactly what the models describe."""

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from helpdesk import thread
from storage.db import alembic_config, upgrade
from storage.models import Base, TicketEvent


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


OLD_OPENING = "Ticket opened by the caller on the line, provisional urgency high. Caller's triage: it partly works."
