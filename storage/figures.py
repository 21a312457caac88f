"""The line's figures for the operators' metrics: calls and tickets counted, confirmation delays measured."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Call, Ticket


def get_call_count(session: Session) -> int:
    """How many calls the line has stored."""
    return session.scalar(select(func.count()).select_from(Call)) or 0


def get_ticket_counts(session: Session) -> list[tuple[str, str, int]]:
    """(channel, phase, count) of every ticket."""
    rows = session.execute(select(Ticket.channel, Ticket.status, func.count()).group_by(Ticket.channel, Ticket.status))
    return [(channel, phase, count) for channel, phase, count in rows]


def get_confirmation_delays(session: Session, since: datetime) -> list[float]:
    """Seconds from the end of each call to its ticket's confirmation email, for confirmations sent since `since`.

    A confirmation sent before the call's status callback arrived counts as 0.
    """
    rows = session.execute(
        select(Call.ended_at, Ticket.confirmation_sent_at)
        .join(Call, Call.call_sid == Ticket.call_sid)
        .where(Ticket.confirmation_sent_at >= since, Call.ended_at.is_not(None))
    )
    return [max(0.0, (sent - ended).total_seconds()) for ended, sent in rows if ended is not None and sent is not None]
