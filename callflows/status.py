"""Ticket status by keypad: what is read to a caller, and who may hear it.

One rule for the phone and the API (`may_hear`): a caller hears a ticket's status when
the caller ID belongs to a contact of the ticket's customer (or opened the ticket), or
after typing the customer's phone PIN. An unknown ticket and a ticket the caller may not
hear get the same words. Every PIN attempt is reserved before the PIN is checked, per
calling number (withheld calls are one caller), per ticket and per customer (StatusGuard),
so guessing has a budget however many calls run at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

import prompts
from callflows.engine import Turn
from prompts import Speech
from storage.emails import message_id_for, queue_email
from storage.models import Call, Customer, Ticket, utcnow
from storage.pins import pin_matches
from storage.ticket_numbers import is_valid
from storage.tickets import caller_may_hear, get_open_tickets_of_contact, get_ticket_by_number

MAX_TICKET_DIGITS = 12
WITHHELD = "withheld"  # the one caller key of every call whose number is withheld
PIN_LOCKED_EMAIL = "pin_locked"  # the Email kind of the dispatchers' notice of a locked PIN

# What may be told: the outcomes of `may_hear`.
AUTHORIZED = "authorized"  # read the status
NEEDS_PIN = "needs_pin"  # ask for the PIN (unknown, and not the caller's: the same)
REFUSED = "refused"  # a wrong PIN (or no PIN to check: the same)
LOCKED = "locked"  # too many failures from this caller or on this ticket: say so
UNAVAILABLE = "unavailable"  # the counters cannot be read: answer no guessable question
INVALID = "invalid"  # not a ticket number at all (its check digit is wrong): no lookup


class GuardUnavailable(Exception):
    """The failure counters cannot be read: answer no guessable question."""


@dataclass(frozen=True)
class Reservation:
    """One PIN attempt, counted before the PIN is checked: the counts it reached, against the budget."""

    caller_key: str
    ticket_number: str
    customer_key: str
    caller_count: int
    ticket_count: int
    customer_count: int
    budget: int

    @property
    def over_budget(self) -> bool:
        """This attempt is beyond some budget: it must not be checked."""
        return max(self.caller_count, self.ticket_count, self.customer_count) > self.budget

    @property
    def caller_or_ticket_spent(self) -> bool:
        """If it fails, the caller or the ticket is locked (and the line may say so)."""
        return max(self.caller_count, self.ticket_count) >= self.budget

    @property
    def customer_spent(self) -> bool:
        """If it fails, the customer's PIN is locked."""
        return self.customer_count >= self.budget


class StatusGuard(Protocol):
    """Counts PIN attempts per calling number, per ticket number and per customer, shared by every process."""

    def locked(self, caller_key: str, ticket_number: str | None = None) -> bool: ...

    def reserve(self, caller_key: str, ticket_number: str, customer_key: str) -> Reservation: ...

    def refund(self, reservation: Reservation) -> None: ...

    def claim_lock_report(self, customer_key: str) -> int | None: ...


@dataclass(frozen=True)
class LockReport:
    """Where a locked PIN is reported: the dispatchers' address (None: not reported) and the sender."""

    to: str | None
    mail_from: str


@dataclass(frozen=True)
class Verdict:
    """What may be told about a ticket: the outcome, and the ticket when it may be read."""

    outcome: str
    ticket: Ticket | None = None


def caller_key_of(caller: str | None) -> str:
    """Whom attempts are counted against: the calling number; every withheld call is one caller."""
    return caller or WITHHELD


def may_hear(
    session: Session,
    guard: StatusGuard,
    ticket_number: str,
    caller: str | None,
    pin: str | None = None,
    *,
    report: LockReport | None = None,
) -> Verdict:
    """Whether `caller` (the caller ID in E.164, None when withheld) may hear ticket `ticket_number`.

    The phone and the API both ask here. Without `pin`: AUTHORIZED for the caller ID of a
    contact of the ticket's customer (or the number that opened it), else NEEDS_PIN. With
    `pin`: the attempt is reserved first (caller, ticket, customer), then exactly one scrypt
    runs at full cost (against a dummy hash when there is no PIN to check), the same for an
    unknown ticket, a customer without a PIN and a wrong PIN. LOCKED when this caller or this
    ticket has no attempts left; a customer whose PIN is locked (reported once to the
    dispatchers) gets REFUSED, in the words and the time of a wrong PIN, so a locked customer
    does not tell which tickets are its own.
    """
    if not (len(ticket_number) <= MAX_TICKET_DIGITS and is_valid(ticket_number)):
        return Verdict(INVALID)
    who = caller_key_of(caller)
    try:
        if guard.locked(who):
            return Verdict(LOCKED)
        ticket = get_ticket_by_number(session, ticket_number)
        if ticket is not None and caller_may_hear(session, ticket, caller):
            return Verdict(AUTHORIZED, ticket)
        if pin is None:
            return Verdict(LOCKED if guard.locked(who, ticket_number) else NEEDS_PIN)
        owner = _pin_owner(session, ticket)
        # No owner (unknown ticket, no PIN): a stand-in per number, so every ticket behaves alike.
        customer_key = f"customer:{owner.id}" if owner is not None else f"number:{ticket_number}"
        reservation = guard.reserve(who, ticket_number, customer_key)
    except GuardUnavailable:
        return Verdict(UNAVAILABLE)
    if reservation.over_budget:
        if owner is not None and reservation.customer_spent:
            _report_lock(session, guard, owner, ticket_number, report)
        if reservation.caller_or_ticket_spent:
            return Verdict(LOCKED)
        pin_matches(pin, None)  # only the customer is locked: sound and take as long as a wrong PIN
        return Verdict(REFUSED)
    if pin_matches(pin, owner.pin_hash if owner is not None else None) and ticket is not None:
        try:
            guard.refund(reservation)
        except GuardUnavailable:
            pass  # the attempt stays counted: a little budget lost, nothing told
        return Verdict(AUTHORIZED, ticket)
    if owner is not None and reservation.customer_spent:
        _report_lock(session, guard, owner, ticket_number, report)
    return Verdict(LOCKED if reservation.caller_or_ticket_spent else REFUSED)


def _pin_owner(session: Session, ticket: Ticket | None) -> Customer | None:
    """The customer whose PIN opens this ticket: a confirmed customer with a PIN.

    A customer typed by an unknown caller is provisional until a dispatcher confirms it:
    its PIN opens nothing of that ticket.
    """
    if ticket is None or ticket.customer_id is None or ticket.needs_match:
        return None
    customer = session.get(Customer, ticket.customer_id)
    return customer if customer is not None and customer.pin_hash else None


def _report_lock(
    session: Session, guard: StatusGuard, customer: Customer, ticket_number: str, report: LockReport | None
) -> None:
    """Tell the dispatchers, once per window, that the customer's PIN is locked (queued; the worker sends it)."""
    if report is None or not report.to:
        return
    try:
        window_start = guard.claim_lock_report(f"customer:{customer.id}")
    except GuardUnavailable:
        return
    if window_start is None:
        return  # another request reported this lock
    key = f"{PIN_LOCKED_EMAIL}:{customer.id}:{window_start}"
    subject, body = pin_locked_email(customer, ticket_number)
    queue_email(
        session,
        key=key,
        kind=PIN_LOCKED_EMAIL,
        to=report.to,
        subject=subject,
        body=body,
        message_id=message_id_for(key, report.mail_from),
    )


def pin_locked_email(customer: Customer, ticket_number: str) -> tuple[str, str]:
    """The dispatchers' notice of a locked PIN, in Italian (the help desk's language): (subject, body)."""
    subject = f"PIN telefonico bloccato: {customer.name} (codice {customer.code})"
    lines = [
        f"Troppi PIN sbagliati per il cliente {customer.name} (codice {customer.code}).",
        "Fino alla fine dell'ora nessuno può conoscere lo stato delle sue richieste con il PIN,",
        "né per telefono né dall'API. I contatti che chiamano dal proprio numero registrato",
        "sentono ancora le loro richieste.",
        "",
        f"Ultima richiesta indicata: {ticket_number}.",
        "",
        "Se non è stato il cliente a sbagliare, qualcuno sta provando a indovinare il PIN:",
        f"valutare di cambiarlo con: flask --app wsgi set-pin {customer.code}",
    ]
    return subject, "\n".join(lines)


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


def _report(turn: Turn) -> LockReport:
    return LockReport(turn.dispatch_email, turn.mail_from)


def status_entry(turn: Turn, _: object) -> str:
    """locked, unavailable, own_tickets (a contact known by caller ID, with open tickets) or ask_number."""
    call = _call(turn)
    call.inquiry_ticket_id, call.inquiry_number, call.inquiry_index = None, None, 0
    try:
        if turn.status_guard.locked(caller_key_of(call.caller)):
            return LOCKED
    except GuardUnavailable:
        if call.contact_id is None:
            return UNAVAILABLE
    # call.contact is set from the caller ID only: a typed number never reaches here as identity.
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
        return INVALID
    call = _call(turn)
    verdict = may_hear(turn.session, turn.status_guard, number, call.caller, report=_report(turn))
    if verdict.outcome == AUTHORIZED:
        call.inquiry_ticket = verdict.ticket
    elif verdict.outcome == NEEDS_PIN:
        call.inquiry_number = number  # unknown or not the caller's: ask for the PIN either way
    return verdict.outcome


def check_status_pin(turn: Turn, digits: object) -> str:
    """The typed PIN for the number typed before: authorized, refused, locked or unavailable."""
    call = _call(turn)
    number, pin = call.inquiry_number or "", str(digits).strip()
    verdict = may_hear(turn.session, turn.status_guard, number, call.caller, pin, report=_report(turn))
    if verdict.outcome == AUTHORIZED:
        call.inquiry_ticket = verdict.ticket
        return AUTHORIZED
    return verdict.outcome if verdict.outcome in (LOCKED, UNAVAILABLE) else REFUSED


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
