"""A ticket's SLA clocks: its response and restore deadlines, and the moments that stop them.

The deadlines count from the ticket's opening, in the SLA time of its level (helpdesk.sla,
helpdesk.clock): set when the ticket opens (helpdesk.intake), counted again from the
opening when its urgency changes or its caller is matched to a customer of another level.
The response clock stops at a person's first action on the ticket (helpdesk.actions), the
restore clock at the move to resolved (started again if the ticket goes back to work).
A caller not matched to a customer (even with a typed customer code: a claim buys no
deadline) is held to the lowest level.
"""

from __future__ import annotations

from datetime import datetime

from helpdesk.sla import UNREGISTERED_LEVEL, SlaTable
from storage.models import Ticket

RESPONSE, RESTORE = "response", "restore"  # the two clocks


def level_of(ticket: Ticket) -> str | None:
    """The SLA level the ticket's deadlines follow: its customer's once the caller is matched, else none."""
    if ticket.needs_match or ticket.customer is None:
        return None
    return ticket.customer.sla


def due(ticket: Ticket, table: SlaTable) -> tuple[datetime, datetime]:
    """(response, restore) deadlines: the stored ones; a ticket from before they were kept has them counted now."""
    level = level_of(ticket)
    response = ticket.response_due_at or table.response_due(ticket.created_at, level, ticket.urgency)
    restore = ticket.restore_due_at or table.restore_due(ticket.created_at, level, ticket.urgency)
    return response, restore


def half_response(ticket: Ticket, table: SlaTable) -> datetime:
    """When half the ticket's response time has passed: half its minutes, counted in its level's SLA time.

    Half of the SLA time, not of the wall clock: a base ticket opened at 17:50 with an hour to
    answer is half-way at 09:20 the next working day, as its deadline is at 09:50.
    """
    return half_response_from(ticket.created_at, level_of(ticket), ticket.urgency, table)


def half_response_from(opened_at: datetime, level: str | None, urgency: str, table: SlaTable) -> datetime:
    """half_response of a ticket opened at `opened_at`, at SLA `level` (None: not matched) and `urgency`."""
    span = table.response[level or UNREGISTERED_LEVEL][urgency]
    return table.hours_of(level).add(opened_at, span / 2)


def deadlines_from(opened_at: datetime, level: str | None, urgency: str, table: SlaTable) -> tuple[datetime, datetime]:
    """(response, restore) deadlines of a ticket opened at `opened_at`, at SLA `level` and `urgency`."""
    return table.response_due(opened_at, level, urgency), table.restore_due(opened_at, level, urgency)


def count(ticket: Ticket, table: SlaTable, before: tuple[datetime, datetime] | None = None) -> dict[str, object]:
    """Count the ticket's deadlines from its opening; the facts a thread entry says of them when they moved.

    `before` is what `due` said before the change (else the stored deadlines are compared).
    Returns {} when the deadlines stay as they were, else {"response_due": ..., "restore_due": ...}
    as ISO 8601 instants. The ticket must have been flushed (its opening time is set on insert).
    """
    response, restore = deadlines_from(ticket.created_at, level_of(ticket), ticket.urgency, table)
    moved = (before or (ticket.response_due_at, ticket.restore_due_at)) != (response, restore)
    ticket.response_due_at, ticket.restore_due_at = response, restore
    return {"response_due": response.isoformat(), "restore_due": restore.isoformat()} if moved else {}


def record_response(ticket: Ticket, at: datetime) -> None:
    """A person acted on the ticket at `at`: the first time stops its response clock."""
    if ticket.first_response_at is None:
        ticket.first_response_at = at
