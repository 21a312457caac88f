"""The queue's order and marks: which open ticket a dispatcher takes first, and what to flag on each.

The most urgent first. Within one urgency, the tickets nobody has answered yet, by their
SLA response deadline (the most overdue first: breached ones lead); then the answered
ones, by their restore deadline. A ticket is answered once a person acted on it
(`first_response_at`, helpdesk.deadlines): its response clock has stopped, so it races
its restore deadline now, and shows as breached only once that has passed.

The deadlines are the ticket's own, counted in its level's SLA time when it opened or its
urgency changed (helpdesk.deadlines); a ticket from before they were kept has them counted
from the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from helpdesk import deadlines
from helpdesk.deadlines import RESPONSE, RESTORE
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
    """A ticket against the SLA clock it races at one moment: the response one, then, once answered, the restore one."""

    clock: str  # RESPONSE or RESTORE
    due: datetime  # when a person must have answered it, or service be back
    left: timedelta  # from that moment to `due`; negative once it has passed
    answered: bool  # a person acted on it: the response clock has stopped

    @property
    def breached(self) -> bool:
        """The deadline of the clock it races has passed."""
        return self.left <= timedelta(0)


def standing(ticket: Ticket, table: SlaTable, now: datetime) -> Standing:
    """Where `ticket` stands at `now`: against its response deadline until a person answers, then its restore one."""
    response, restore = deadlines.due(ticket, table)
    if ticket.first_response_at is None:
        return Standing(clock=RESPONSE, due=response, left=response - now, answered=False)
    return Standing(clock=RESTORE, due=restore, left=restore - now, answered=True)


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
