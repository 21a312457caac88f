"""The queue's order and marks: which open ticket a dispatcher takes first, and what to flag on each.

The most urgent first. Within one urgency, the tickets nobody has answered yet, by their
SLA response deadline (the most overdue first: breached ones lead); then the answered
ones, by the same deadline. A ticket is answered once a person confirmed its urgency
(`urgency_confirmed_at`): it no longer races its response deadline, so it never shows as
breached and gives way to the tickets still waiting for a first answer.

The response deadline counts from the ticket's opening, with the SLA level of its customer;
a caller not yet matched to a customer (`needs_match`, even with a typed customer code:
a claim buys no deadline) is held to the lowest level, as helpdesk.sla says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from helpdesk.sla import SlaTable
from storage.models import Ticket
from storage.tickets import URGENCIES

# critical first; an urgency the table does not know (none should exist) goes last
_URGENCY_RANK = {urgency: rank for rank, urgency in enumerate(reversed(URGENCIES))}

# What the queue flags on a ticket, in the order they are shown.
VOICEMAIL = "voicemail"  # opened from a message left on the line: nobody has spoken to the caller
UNREGISTERED = "unregistered"  # the caller is not matched to a customer's contact yet
CALLBACK = "callback"  # the caller withheld the number and typed one to be called back on


@dataclass(frozen=True)
class Standing:
    """A ticket against its response deadline, at one moment."""

    due: datetime  # when a person must have answered it
    left: timedelta  # from that moment to `due`; negative once it has passed
    answered: bool  # a person confirmed its urgency: the deadline no longer runs

    @property
    def breached(self) -> bool:
        """Unanswered, and its response deadline has passed."""
        return not self.answered and self.left <= timedelta(0)


def sla_level(ticket: Ticket) -> str | None:
    """The SLA level the ticket's deadlines follow: its customer's once the caller is matched, else none."""
    if ticket.needs_match or ticket.customer is None:
        return None
    return ticket.customer.sla


def standing(ticket: Ticket, table: SlaTable, now: datetime) -> Standing:
    """Where `ticket` stands against its response deadline at `now`."""
    due = table.response_due(ticket.created_at, sla_level(ticket), ticket.urgency)
    return Standing(due=due, left=due - now, answered=ticket.urgency_confirmed_at is not None)


def in_order(tickets: Iterable[Ticket], table: SlaTable, now: datetime) -> list[tuple[Ticket, Standing]]:
    """The tickets with their standing, in the order a dispatcher should take them (see the module's docstring)."""
    placed = [(ticket, standing(ticket, table, now)) for ticket in tickets]
    placed.sort(
        key=lambda pair: (
            _URGENCY_RANK.get(pair[0].urgency, len(_URGENCY_RANK)),
            pair[1].answered,
            pair[1].due,
            pair[0].id,
        )
    )
    return placed


def marks(ticket: Ticket) -> tuple[str, ...]:
    """What the queue flags on `ticket`: VOICEMAIL, UNREGISTERED, CALLBACK, in that order."""
    found = []
    if ticket.voicemail:
        found.append(VOICEMAIL)
    if ticket.needs_match:
        found.append(UNREGISTERED)
    if ticket.callback_number:
        found.append(CALLBACK)
    return tuple(found)


def whole_minutes(span: timedelta) -> tuple[int, int, int]:
    """(days, hours, minutes) of a span's length, in whole minutes.

    Time left is rounded up, so a countdown says "1 min" until the deadline and never "0 min"
    before it; time overdue is rounded down, never saying more has passed than has, but at
    least "1 min" once the deadline is gone.
    """
    seconds = span.total_seconds()
    minutes = int(-(-seconds // 60)) if seconds >= 0 else max(1, int(-seconds // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return days, hours, minutes
