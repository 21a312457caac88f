"""Ticket status by keypad: what is read to a caller, and who may hear it.

A caller hears a ticket's status when their number belongs to a contact of the
ticket's customer (or opened it), or after typing the customer's phone PIN. An
unknown ticket and a ticket the caller may not hear get the same words, and failed
attempts are counted per calling number and per ticket (StatusGuard) to stop guessing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import prompts
from callflows.engine import Turn
from prompts import Speech
from storage.models import Call, Ticket, utcnow
from storage.pins import pin_matches
from storage.ticket_numbers import is_valid
from storage.tickets import caller_may_hear, get_open_tickets_of_contact, get_ticket_by_number

MAX_TICKET_DIGITS = 12


class GuardUnavailable(Exception):
    """The failure counters cannot be read: answer no guessable question."""


class StatusGuard(Protocol):
    """Counts failed status inquiries per calling number and per ticket number."""

    def locked(self, caller_key: str, ticket_number: str | None = None) -> bool: ...

    def failed(self, caller_key: str, ticket_number: str | None) -> None: ...


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


def _call(turn: Turn) -> Call:
    assert isinstance(turn.call, Call)
    return turn.call


def caller_key(call: Call) -> str:
    """Whom failures are counted against: the calling number, or this call when it is withheld."""
    return call.caller or f"call:{call.call_sid}"


def status_entry(turn: Turn, _: object) -> str:
    """locked, unavailable, own_tickets (the caller's contact has open tickets) or ask_number."""
    call = _call(turn)
    call.inquiry_ticket_id, call.inquiry_number, call.inquiry_index = None, None, 0
    try:
        if turn.status_guard.locked(caller_key(call)):
            return "locked"
    except GuardUnavailable:
        if call.contact_id is None:
            return "unavailable"
    if call.contact_id is not None and get_open_tickets_of_contact(turn.session, call.contact_id):
        return "own_tickets"
    return "ask_number"


def next_own_ticket(turn: Turn, _: object) -> None:
    _call(turn).inquiry_index += 1


def choose_own_ticket(turn: Turn, _: object) -> None:
    call = _call(turn)
    tickets = _own_tickets(turn)
    call.inquiry_ticket_id = tickets[call.inquiry_index % len(tickets)].id if tickets else None


def check_ticket_number(turn: Turn, digits: object) -> str:
    """The typed number: its shape first (no lookup), then who may hear it."""
    number = str(digits).strip()
    if not (number.isascii() and number.isdigit()):
        return "not_digits"
    if len(number) > MAX_TICKET_DIGITS:
        return "too_long"
    if not is_valid(number):
        return "invalid"
    call = _call(turn)
    refusal = _guard_refusal(turn, call, number)
    if refusal:
        return refusal
    ticket = get_ticket_by_number(turn.session, number)
    if ticket is not None and caller_may_hear(turn.session, ticket, call.caller):
        call.inquiry_ticket_id = ticket.id
        return "authorized"
    call.inquiry_number = number  # unknown or not the caller's: ask for the PIN either way
    return "needs_pin"


def check_status_pin(turn: Turn, digits: object) -> str:
    call = _call(turn)
    number = call.inquiry_number or ""
    refusal = _guard_refusal(turn, call, number)
    if refusal:
        return refusal
    ticket = get_ticket_by_number(turn.session, number)
    pin_hash = ticket.customer.pin_hash if ticket is not None and ticket.customer is not None else None
    if ticket is not None and pin_matches(str(digits).strip(), pin_hash):
        call.inquiry_ticket_id = ticket.id
        return "authorized"
    try:
        turn.status_guard.failed(caller_key(call), number)
    except GuardUnavailable:
        return "unavailable"
    return _guard_refusal(turn, call, number) or "refused"


def _guard_refusal(turn: Turn, call: Call, number: str) -> str | None:
    """locked or unavailable when status questions about `number` may not be answered to this caller."""
    try:
        return "locked" if turn.status_guard.locked(caller_key(call), number) else None
    except GuardUnavailable:
        return "unavailable"


def keep_voice_message(turn: Turn, _: object) -> None:
    """The message just recorded is added to the ticket being read (idempotent by RecordingSid)."""
    from storage.tickets import add_voice_message

    call = _call(turn)
    sid, url = turn.form.get("RecordingSid"), turn.form.get("RecordingUrl")
    if call.inquiry_ticket is not None and sid and url:
        add_voice_message(turn.session, call.inquiry_ticket, call.call_sid, sid, url, call.language)


# -- speakers ------------------------------------------------------------------------------


def _own_tickets(turn: Turn) -> list[Ticket]:
    call = _call(turn)
    return get_open_tickets_of_contact(turn.session, call.contact_id) if call.contact_id else []


def my_tickets(turn: Turn) -> Speech:
    """How many open tickets, then the one at hand (the newest first) in short."""
    call = _call(turn)
    text = prompts.catalogue(call.language).text
    tickets = _own_tickets(turn)
    if not tickets:
        return []
    index = call.inquiry_index % len(tickets)
    speech: Speech = []
    if call.inquiry_index == 0:
        count = len(tickets)
        speech.append(text("my_tickets_one") if count == 1 else text("my_tickets_many", count=count))
        speech.append(text("my_tickets_newest"))
    elif index == 0:
        speech += [text("my_tickets_wrapped"), text("my_tickets_newest")]
    else:
        speech.append(text("my_tickets_next"))
    ticket = tickets[index]
    speech += prompts.spoken_digits(ticket.number or "")
    speech.append(text("status_phase", phase=text(f"phase_{ticket.status}")))
    now, zone = utcnow(), ZoneInfo(turn.timezone)
    speech.append(text("status_updated", when=prompts.spoken_when(ticket.updated_at, now, call.language, zone)))
    return speech


def ticket_status(turn: Turn) -> Speech:
    call = _call(turn)
    if call.inquiry_ticket is None:
        return []
    return status_speech(call.inquiry_ticket, call.language, utcnow(), ZoneInfo(turn.timezone))
