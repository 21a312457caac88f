"""Who may do what in the console and the API: a dispatcher everything, a technician the work on their own tickets.

A technician sees the queue (every open ticket) and the tickets assigned to them, whatever
their phase, and acts only on their own tickets, and never with a dispatcher's action:
those decide who works a ticket, for whom and how urgently, or end it. A disabled account
may do nothing. The actions are a declared set: asking about one that is not in it is a
mistake in the caller, and raises.
"""

from __future__ import annotations

from typing import Protocol

from helpdesk.phases import OPEN_PHASES, PHASES
from storage.users import DISPATCHER, TECHNICIAN

# Every action on a ticket, by the name the console, the API and the thread use for it.
ACTIONS = frozenset(
    {
        "change_urgency",  # confirm or change the urgency, with a reason
        "match_caller",  # match an unregistered or withheld caller to a customer's contact
        "move_phase",  # a move between the open phases, or to resolved
        "close",  # the move to closed
        "set_estimate",  # the estimated restore time (emailed to the contact)
        "assign",  # give the ticket to a technician
        "escalate",  # hand it to an external vendor
        "lend_device",  # a courtesy device lent to the customer
        "return_device",  # and its return
        "add_note",  # an internal note, never emailed
        "reply",  # a reply emailed to the contact and referents
    }
)
# The actions only a dispatcher may take, on any ticket.
DISPATCHER_ONLY = frozenset({"assign", "match_caller", "escalate", "change_urgency", "close"})

if not DISPATCHER_ONLY <= ACTIONS:  # checked when it loads, like the phases
    raise ValueError(f"dispatcher-only actions that are no action: {sorted(DISPATCHER_ONLY - ACTIONS)}")


class Person(Protocol):
    """A user of the console (storage.models.User, or the console's signed-in wrapper of one)."""

    @property
    def id(self) -> int: ...

    @property
    def role(self) -> str: ...

    @property
    def active(self) -> bool: ...


class Assignable(Protocol):
    """A ticket, as far as the rules about people need it."""

    @property
    def technician_id(self) -> int | None: ...

    @property
    def status(self) -> str: ...


def is_dispatcher(user: Person) -> bool:
    return user.active and user.role == DISPATCHER


def may_view_queue(user: Person) -> bool:
    """Every active dispatcher and technician sees the queue."""
    return user.active and user.role in (DISPATCHER, TECHNICIAN)


def may_view(user: Person, ticket: Assignable) -> bool:
    """A dispatcher sees every ticket; a technician the open ones (the queue) and their own."""
    if is_dispatcher(user):
        return True
    return may_view_queue(user) and (ticket.status in OPEN_PHASES or _assigned_to(user, ticket))


def may_act(user: Person, ticket: Assignable, action: str) -> bool:
    """A dispatcher may take every action on every ticket; a technician the others, on their own tickets."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: one of {', '.join(sorted(ACTIONS))}")
    if is_dispatcher(user):
        return True
    return user.active and user.role == TECHNICIAN and action not in DISPATCHER_ONLY and _assigned_to(user, ticket)


def phase_action(target: str) -> str:
    """The action a move to phase `target` is: `close` to the final phase, else `move_phase`."""
    return "close" if target == PHASES.final else "move_phase"


def may_move(user: Person, ticket: Assignable, target: str) -> bool:
    """May `user` move `ticket` to phase `target` (whether the phases allow the move is helpdesk.phases' to say)."""
    return may_act(user, ticket, phase_action(target))


def dispatcher_only(action: str) -> bool:
    """True when only a dispatcher may take `action`."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return action in DISPATCHER_ONLY


def _assigned_to(user: Person, ticket: Assignable) -> bool:
    return ticket.technician_id is not None and ticket.technician_id == user.id
