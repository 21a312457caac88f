"""Who may hear a ticket: one rule for the phone and the API, with a budget for guessing PINs.

A caller hears a ticket's status when the caller ID belongs to a contact of the ticket's
customer (or opened the ticket), or after typing the customer's phone PIN. An unknown
ticket and a ticket the caller may not hear get the same answer. Every PIN attempt is
reserved before the PIN is checked, per calling number (withheld calls are one caller),
per ticket and per customer (StatusGuard), so guessing has a budget however many calls
run at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from storage.contacts import get_contact_of_customer_by_phone
from storage.emails import message_id_for, queue_email
from storage.models import Customer, Ticket
from storage.pins import pin_matches
from storage.ticket_numbers import is_valid
from storage.tickets import get_ticket_by_number

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
        if ticket is not None and caller_id_may_hear(session, ticket, caller):
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


def caller_id_may_hear(session: Session, ticket: Ticket, caller: str | None) -> bool:
    """True when the caller ID `caller` (E.164) is the number that opened the ticket, or a contact's
    of the ticket's customer, once that customer is confirmed (a typed code is only a claim)."""
    if caller is None:
        return False
    if ticket.caller == caller:
        return True
    if ticket.customer_id is None or ticket.needs_match:
        return False
    return get_contact_of_customer_by_phone(session, ticket.customer_id, caller) is not None


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
