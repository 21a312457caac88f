"""Ticket status by keypad: the status menu's actions, and what is read to a caller.

Who may hear a ticket is decided by helpdesk.access, the same rule as the API's: an
unknown ticket and a ticket the caller may not hear get the same words.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

import prompts
from callflows.engine import Turn
from helpdesk.access import (
    AUTHORIZED,
    INVALID,
    LOCKED,
    MAX_TICKET_DIGITS,
    NEEDS_PIN,
    REFUSED,
    UNAVAILABLE,
    GuardUnavailable,
    caller_key_of,
    may_hear,
)
from helpdesk.phases import OPEN_PHASES
from prompts import Speech
from storage.models import Ticket, utcnow
from storage.ticket_numbers import is_valid
from storage.tickets import TicketSummary, add_voice_message, get_tickets_of_contact


def status_speech(ticket: Ticket, language: str, now: datetime, timezone: ZoneInfo) -> Speech:
    """What the line reads about a ticket: number, phase, urgency, last update, estimate, technician."""
    text = prompts.catalogue(language).text
    speech: Speech = [text("status_intro"), *prompts.spoken_digits(ticket.number or "")]
    speech.append(text("status_phase", phase=text(f"phase_{ticket.status}")))
    speech.append(text("status_urgency", urgency=text(f"urgency_{ticket.urgency}")))
    speech.append(text("status_updated", when=prompts.spoken_when(ticket.updated_at, now, language, timezone)))
    if ticket.estimated_restore_at is not None:
        speech.append(
            text("status_estimate", when=prompts.spoken_when(ticket.estimated_restore_at, now, language, timezone))
        )
    if ticket.technician is not None:
        speech.append(text("status_technician", name=ticket.technician.first_name))
    else:
        speech.append(text("status_no_technician"))
    return speech


# -- actions -------------------------------------------------------------------------------


def status_entry(turn: Turn) -> str:
    """own_tickets (a contact known by caller ID, with open tickets), locked, unavailable or ask_number.

    A caller's own tickets are theirs by caller ID, no guess: the lock on guessing (helpdesk.access)
    does not keep them, and hearing them asks nothing of Redis. The lock is checked before a
    number is asked for (and again, with the budget, when one is typed).
    """
    call = turn.call
    turn.item = 0  # the newest of the caller's tickets first
    # call.contact is set from the caller ID only: a typed number never reaches here as identity.
    if _own_tickets(turn):
        return "own_tickets"
    try:
        if turn.status_guard.locked(caller_key_of(call.caller)):
            return LOCKED
    except GuardUnavailable:
        if call.contact_id is None:
            return UNAVAILABLE
    return "ask_number"


def next_own_ticket(turn: Turn, _: object) -> None:
    turn.item += 1


def choose_own_ticket(turn: Turn, _: object) -> None:
    call = turn.call
    tickets = _own_tickets(turn)
    call.inquiry_ticket_id = tickets[turn.item % len(tickets)].id if tickets else None


def check_ticket_number(turn: Turn, digits: str) -> str:
    """The typed number: its shape first (no lookup), then who may hear it."""
    number = digits.strip()
    if not (number.isascii() and number.isdigit()):
        return "not_digits"
    if len(number) > MAX_TICKET_DIGITS:
        return "too_long"
    if not is_valid(number):
        return INVALID
    call = turn.call
    verdict = may_hear(turn.session, turn.status_guard, number, call.caller, report=turn.lock_report)
    if verdict.outcome == AUTHORIZED:
        call.inquiry_ticket_id = verdict.ticket.id if verdict.ticket else None
    elif verdict.outcome == NEEDS_PIN:
        call.inquiry_number = number  # unknown or not the caller's: ask for the PIN either way
    return verdict.outcome


def check_status_pin(turn: Turn, digits: str) -> str:
    """The typed PIN for the number typed before: authorized, refused, locked or unavailable."""
    call = turn.call
    number, pin = call.inquiry_number or "", digits.strip()
    verdict = may_hear(turn.session, turn.status_guard, number, call.caller, pin, report=turn.lock_report)
    if verdict.outcome == AUTHORIZED:
        call.inquiry_ticket_id = verdict.ticket.id if verdict.ticket else None
        return AUTHORIZED
    return verdict.outcome if verdict.outcome in (LOCKED, UNAVAILABLE) else REFUSED


def keep_voice_message(turn: Turn, _: object) -> None:
    """The message just recorded is added to the ticket being read (idempotent by RecordingSid)."""
    call = turn.call
    sid, url = turn.form.get("RecordingSid"), turn.form.get("RecordingUrl")
    ticket = _inquiry_ticket(turn)
    if ticket is not None and sid and url:
        add_voice_message(turn.session, ticket, call.call_sid, sid, url, turn.language)


# -- speakers ------------------------------------------------------------------------------


def _own_tickets(turn: Turn) -> list[TicketSummary]:
    """The open tickets of the contact known by caller ID, newest first, read once per webhook
    (the status step decides on the list and my_tickets reads it out in the same webhook)."""
    if not turn.call.contact_id:
        return []
    if "own_tickets" not in turn.memo:
        turn.memo["own_tickets"] = get_tickets_of_contact(turn.db.connection, turn.call.contact_id, OPEN_PHASES)
    return list(cast(list[TicketSummary], turn.memo["own_tickets"]))


def my_tickets(turn: Turn) -> Speech:
    """How many open tickets, then the one at hand (the newest first) in short."""
    text = prompts.catalogue(turn.language).text
    tickets = _own_tickets(turn)
    if not tickets:
        return []
    index = turn.item % len(tickets)
    speech: Speech = []
    if turn.item == 0:
        count = len(tickets)
        speech.append(text("my_tickets_one") if count == 1 else text("my_tickets_many", count=count))
        speech.append(text("my_tickets_newest"))
    elif index == 0:
        speech += [text("my_tickets_wrapped"), text("my_tickets_newest")]
    else:
        speech.append(text("my_tickets_next"))
    ticket = tickets[index]
    turn.note("status_heard_at")  # a ticket's status read to the caller
    speech += prompts.spoken_digits(ticket.number or "")
    speech.append(text("status_phase", phase=text(f"phase_{ticket.status}")))
    now, zone = utcnow(), ZoneInfo(turn.timezone)
    speech.append(text("status_updated", when=prompts.spoken_when(ticket.updated_at, now, turn.language, zone)))
    return speech


def ticket_status(turn: Turn) -> Speech:
    ticket = _inquiry_ticket(turn)
    if ticket is None:
        return []
    turn.note("status_heard_at")  # a ticket's status read to the caller
    return status_speech(ticket, turn.language, utcnow(), ZoneInfo(turn.timezone))


def _inquiry_ticket(turn: Turn) -> Ticket | None:
    """The ticket the caller was let hear in this call."""
    ticket_id = turn.call.inquiry_ticket_id
    return turn.session.get(Ticket, ticket_id) if ticket_id is not None else None
