"""Opening tickets, writing their thread, and finding them again."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from sqlalchemy import Connection, Table, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage import outbox
from storage.models import Call, Contact, Customer, Ticket, TicketEvent, User, VoiceMessage, utcnow
from storage.statements import Alone, Statement, one_of, run
from storage.ticket_numbers import FIRST_SERIAL, ticket_number

URGENCIES = ("low", "normal", "high", "critical")

# The kinds of entry on a ticket's thread; helpdesk/thread_<language>.toml words each one (a test checks).
EVENT_KINDS = frozenset(
    {
        "opened",  # by (line, voicemail, hangup, fallback), urgency, severity, unregistered, customer...
        "no_audio",
        "recording",  # bytes when downloaded; recording_sid when it arrived after the opening
        "recording_refused",  # error
        "recording_unavailable",  # error
        "transcript",  # words ("" when the recording holds no speech)
        "transcription_failed",  # error
        "urgency_raised",  # from, to, words; response_due, restore_due (ISO 8601) when the SLA deadlines moved
        "no_confirmation",  # why (not_in_directory, not_confirmed)
        "email",  # email (its kind), to
        "dispatch_email",  # email, to
        "voice_message_email",  # email, to
        "email_refused",  # email, to, answer
        "email_failed",  # to, and error or starts
        "follow_up_failed",  # work, and error or starts
        "oncall_sms",  # alert (alert, reminder), to (masked), sid: an SMS Twilio took for the on-call technician
        "oncall_sms_refused",  # alert, to (masked), answer: Twilio refused it (4xx), not tried again
        "follow_up_retried",  # work
        "voice_message",  # recording_sid
        "voice_message_transcript",  # words
        "fallback",
        "extra_recording",  # recording_sid, url
        "note",  # note: words written by a person, said as they are (an internal note, never emailed)
        # A person's actions (helpdesk.actions), each entry with its user_id:
        "urgency_set",  # urgency, reason; from when it changed; response_due, restore_due when the deadlines moved
        # contact, contact_id, customer; number_saved, previous_phone when saved; response_due, restore_due as above
        "caller_matched",
        "phase_moved",  # from, to
        "restore_estimated",  # at (ISO 8601); previous; unmatched when nobody could be emailed
        "assigned",  # to, to_id; from, from_id when re-assigned; skill when one is needed
        "escalated",  # vendor, reference, restore_at (ISO 8601)
        "device_lent",  # device
        "device_returned",  # device
        "reply",  # text, to; cc (the referents, comma-separated) when copied
    }
)


def get_ticket_by_number(session: Session, number: str) -> Ticket | None:
    return session.scalars(select(Ticket).where(Ticket.number == number)).one_or_none()


def get_ticket_for_update(session: Session, number: str) -> Ticket | None:
    """The ticket numbered `number`, its row locked until the transaction ends (PostgreSQL; SQLite locks on write)."""
    return session.scalars(select(Ticket).where(Ticket.number == number).with_for_update()).one_or_none()


def get_tickets_of_caller(session: Session, caller: str) -> list[Ticket]:
    return list(
        session.scalars(
            select(Ticket).where(Ticket.caller == caller).order_by(Ticket.created_at.desc(), Ticket.id.desc())
        )
    )


def record_event(session: Session, ticket: Ticket, kind: str, **facts: object) -> TicketEvent:
    """Append an entry to the ticket's thread, now: its kind and its facts (JSON values), put into words when read."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown kind of thread event: {kind!r}")
    event = TicketEvent(ticket=ticket, kind=kind, facts=facts, at=utcnow())
    session.add(event)
    ticket.updated_at = utcnow()
    return event


class CallFacts(Protocol):
    """What a call tells its ticket: a stored call (storage.models.Call) or a webhook's record of it
    (storage.calls.CallRecord). Opening a ticket sets `ticket_id`, and the identity when it finds one."""

    call_sid: str
    caller: str | None
    language: str
    callback_number: str | None
    customer_id: int | None
    contact_id: int | None
    suggested_contact_id: int | None
    severity: int | None
    recording_sid: str | None
    recording_url: str | None
    ticket_id: int | None


@dataclass(frozen=True)
class OpenedTicket:
    """A call's ticket as its opening leaves it: what the line reads back, and whether it is new."""

    id: int
    number: str
    recording_sid: str | None
    new: bool


_tickets: Table = Ticket.__table__  # type: ignore[assignment]
_events: Table = TicketEvent.__table__  # type: ignore[assignment]
_customers: Table = Customer.__table__  # type: ignore[assignment]
_contacts: Table = Contact.__table__  # type: ignore[assignment]
_OPENING_COLUMNS = (
    "id",
    "number",
    "urgency",
    "channel",
    "language",
    "caller",
    "callback_number",
    "customer_id",
    "contact_id",
    "needs_match",
    "suggested_contact_id",
    "voicemail",
    "severity",
    "call_sid",
    "recording_sid",
    "recording_url",
    "response_due_at",
    "restore_due_at",
    "created_at",
    "updated_at",
)
# Built once (a statement built per request costs more than running it). A CallSid that has a
# ticket already inserts nothing and returns no row.
_INSERT_CALL_TICKET = {
    dialect.__name__.rpartition(".")[2]: Statement(
        dialect.insert(_tickets)
        .values({name: bindparam(name, type_=_tickets.c[name].type) for name in _OPENING_COLUMNS})
        .on_conflict_do_nothing(index_elements=["call_sid"])
        .returning(_tickets.c.id)
    )
    for dialect in (postgresql, sqlite)
}
# The id the new ticket will have, read first so that its row is inserted whole, number included
# (the number is made from the id). PostgreSQL: the next value of the id's sequence. SQLite: the one
# after the highest, the id SQLite itself would give; the opening holds SQLite's write lock from its
# transaction's start (storage.db), so no other writer can take it in between.
_NEXT_ID = {
    "postgresql": Statement(select(func.nextval(func.pg_get_serial_sequence("tickets", "id")))),
    "sqlite": Statement(select(func.coalesce(func.max(_tickets.c.id), 0) + 1)),
}
_OPENED = select(_tickets.c.id, _tickets.c.number, _tickets.c.recording_sid)
_OPENED_BY_SID = Statement(_OPENED.where(_tickets.c.call_sid == bindparam("sid")))
_OPENED_BY_ID = Statement(_OPENED.where(_tickets.c.id == bindparam("ticket_id")))
_ADD_EVENT = Statement(
    insert(_events)
    .values(
        ticket_id=bindparam("ticket_id"),
        kind=bindparam("kind"),
        facts=bindparam("facts", type_=_events.c.facts.type),
        at=bindparam("at", type_=_events.c.at.type),
    )
    .inline()
)


def open_call_ticket(
    connection: Connection,
    call: CallFacts,
    urgency: str,
    *,
    voicemail: bool,
    opened_by: str,
    opened_at: datetime | None = None,
    due: tuple[datetime | None, datetime | None] = (None, None),
) -> OpenedTicket:
    """Open the one ticket of this call (or find it if it exists) and queue its follow-up, in Core statements.

    `opened_by` says who, as a code the thread puts into words: "line" (the caller on the
    line), "voicemail" (a message left on the line), "hangup" (the caller hanging up after
    the message) or "fallback" (a message taken while the line was failing). `due` are the
    SLA deadlines (response, restore) counted from `opened_at` (helpdesk.intake counts them).

    The contact is the one known by caller ID, and nobody else: without one the ticket
    needs a dispatcher's match (a typed customer code is provisional, the contact a typed
    callback number belongs to only a suggestion), and no email goes to the customer.

    Idempotent: the call's CallSid is unique on tickets, so a repeated webhook never opens
    a second ticket. No savepoint: whoever opens a call's ticket holds the call's row
    (storage.calls, ivr.voice.calls), so the caller's key and a callback cannot both get
    here. Sets `call.ticket_id`; the caller stores the call and commits.
    """
    if call.ticket_id is not None:
        ((ticket_id, number, recording_sid),) = run(connection, _OPENED_BY_ID, {"ticket_id": call.ticket_id})
        return OpenedTicket(ticket_id, number, recording_sid, new=False)
    now = opened_at or utcnow()
    ((ticket_id,),) = run(connection, _NEXT_ID[connection.dialect.name])
    number = ticket_number(FIRST_SERIAL + ticket_id - 1)  # the id gives the serial, and so the number
    values = {
        "id": ticket_id,
        "number": number,
        "urgency": urgency,
        "channel": "phone",
        "language": call.language,
        "caller": call.caller,
        "callback_number": call.callback_number,
        "customer_id": call.customer_id,
        "contact_id": call.contact_id,
        "needs_match": call.contact_id is None,
        "suggested_contact_id": call.suggested_contact_id,
        "voicemail": voicemail,
        "severity": call.severity,
        "call_sid": call.call_sid,
        "recording_sid": call.recording_sid,
        "recording_url": call.recording_url,
        "response_due_at": due[0],
        "restore_due_at": due[1],
        "created_at": now,
        "updated_at": now,
    }
    inserted = run(connection, _INSERT_CALL_TICKET[connection.dialect.name], values)
    if not inserted:  # opened already, by a webhook that did not get to store it on the call
        ((ticket_id, number, recording_sid),) = run(connection, _OPENED_BY_SID, {"sid": call.call_sid})
        call.ticket_id = ticket_id
        return OpenedTicket(ticket_id, number, recording_sid, new=False)
    entries = [{"kind": "opened", "facts": _opening_facts(connection, call, urgency, voicemail, opened_by)}]
    if call.recording_sid is None:
        entries.append({"kind": "no_audio", "facts": {}})
    run(connection, _ADD_EVENT, [{**entry, "ticket_id": ticket_id, "at": now} for entry in entries])
    outbox.add_new(connection, [outbox.new_work(outbox.FOLLOW_UP, follow_up_key(ticket_id), ticket_id=ticket_id)])
    call.ticket_id = ticket_id
    return OpenedTicket(ticket_id, number, call.recording_sid, new=True)


def open_ticket_for_call(session: Session, call: Call, urgency: str, *, voicemail: bool, opened_by: str) -> Ticket:
    """open_call_ticket in the session's transaction, for code that holds the call as an ORM object."""
    session.flush()
    opened = open_call_ticket(session.connection(), call, urgency, voicemail=voicemail, opened_by=opened_by)
    return ticket_of_opened(session, call, opened)


def ticket_of_opened(session: Session, call: Call, opened: OpenedTicket) -> Ticket:
    """The ORM's view of a ticket opened in Core: the ticket, and the call pointing to it."""
    ticket = session.get(Ticket, opened.id, populate_existing=True)
    assert ticket is not None
    call.ticket = ticket
    return ticket


def record_action(session: Session, ticket: Ticket, user: User, kind: str, **facts: object) -> TicketEvent:
    """Append the entry of what a person (`user`) did to the ticket, as record_event does."""
    event = record_event(session, ticket, kind, **facts)
    event.user = user
    return event


def follow_up_key(ticket_id: int) -> str:
    """The outbox key of a new ticket's follow-up (recording, transcript, emails)."""
    return f"{outbox.FOLLOW_UP}:{ticket_id}"


def reopen_follow_up(session: Session, ticket: Ticket) -> None:
    """Run the ticket's follow-up again (its steps already done are not done twice): the emails a
    recognised caller gets go out once a dispatcher has matched the caller."""
    outbox.reopen(session, follow_up_key(ticket.id))


def attach_recording(session: Session, ticket: Ticket, recording_sid: str, recording_url: str) -> bool:
    """Attach a recording that arrived after the ticket was opened; False if it already has one."""
    if ticket.recording_sid is not None:
        return False
    ticket.recording_sid = recording_sid
    ticket.recording_url = recording_url
    record_event(session, ticket, "recording", recording_sid=recording_sid)
    # The follow-up may be running or done (emails queued without a transcript): run it
    # again for the transcript; the emails it already queued are not sent twice.
    outbox.reopen(session, follow_up_key(ticket.id))
    return True


def thread_mentions_recording(ticket: Ticket, recording_sid: str) -> bool:
    """True when an entry of the ticket's thread names the recording (an entry from before facts: in its words)."""
    for event in ticket.events:
        if event.facts.get("recording_sid") == recording_sid or recording_sid in str(event.facts.get("note", "")):
            return True
    return False


_CUSTOMER_NAMED = Statement(
    select(_customers.c.name, _customers.c.code).where(_customers.c.id == bindparam("customer_id"))
)
_SUGGESTED = Statement(
    select(_contacts.c.name, _customers.c.name)
    .join(_customers, _customers.c.id == _contacts.c.customer_id)
    .where(_contacts.c.id == bindparam("contact_id"))
)


def _opening_facts(
    connection: Connection, call: CallFacts, urgency: str, voicemail: bool, opened_by: str
) -> dict[str, object]:
    """What the opening entry says: who opened the ticket, how urgent, and who the caller may be."""
    facts: dict[str, object] = {"by": opened_by, "urgency": urgency}
    if call.severity is not None:
        facts["severity"] = call.severity
    facts["unregistered"] = call.customer_id is None
    if call.customer_id is not None and call.contact_id is None:  # a typed code: provisional
        ((name, code),) = run(connection, _CUSTOMER_NAMED, {"customer_id": call.customer_id})
        facts["customer"], facts["customer_code"] = name, code
    if call.callback_number:
        facts["callback_number"] = call.callback_number
        if call.suggested_contact_id is not None:
            (suggested,) = run(connection, _SUGGESTED, {"contact_id": call.suggested_contact_id})
            facts["suggested_contact_id"] = call.suggested_contact_id
            facts["suggested_contact"], facts["suggested_customer"] = suggested
    facts["voicemail"] = voicemail
    return facts


def retry_failed_work(session: Session) -> int:
    """Make work that failed for good pending again; the relay enqueues it. Returns how many."""
    failed = outbox.retry_failed(session)
    for work in failed:
        ticket = session.get(Ticket, work.ticket_id) if work.ticket_id is not None else None
        if ticket is not None:
            record_event(session, ticket, "follow_up_retried", work=work.kind)
    return len(failed)


@dataclass(frozen=True)
class TicketSummary:
    """What the line reads of each of a caller's tickets."""

    id: int
    number: str | None
    status: str
    updated_at: datetime


@lru_cache(maxsize=8)
def _of_contact(phases: tuple[str, ...]) -> Statement:
    """A contact's tickets in these phases: one statement for each set of phases (there are few)."""
    return Statement(
        select(_tickets.c.id, _tickets.c.number, _tickets.c.status, _tickets.c.updated_at)
        .where(_tickets.c.contact_id == bindparam("contact_id"), one_of(_tickets.c.status, phases))
        .order_by(_tickets.c.created_at.desc(), _tickets.c.id.desc())
    )


def get_tickets_of_contact(
    connection: Connection | Alone, contact_id: int, phases: Collection[str]
) -> list[TicketSummary]:
    """The contact's tickets in one of `phases` (helpdesk.phases names them), newest first, in one Core query."""
    rows = run(connection, _of_contact(tuple(phases)), {"contact_id": contact_id})
    return [TicketSummary(*row) for row in rows]


def add_voice_message(
    session: Session, ticket: Ticket, call_sid: str, recording_sid: str, recording_url: str, language: str
) -> VoiceMessage:
    """Append a caller's spoken message to the ticket (once per recording) and queue its follow-up."""
    existing = session.scalars(select(VoiceMessage).where(VoiceMessage.recording_sid == recording_sid)).one_or_none()
    if existing is not None:
        return existing
    message = VoiceMessage(
        ticket=ticket, call_sid=call_sid, recording_sid=recording_sid, recording_url=recording_url, language=language
    )
    session.add(message)
    session.flush()
    record_event(session, ticket, "voice_message", recording_sid=recording_sid)
    outbox.add(
        session,
        outbox.VOICE_MESSAGE,
        f"{outbox.VOICE_MESSAGE}:{message.id}",
        ticket_id=ticket.id,
        message_id=message.id,
    )
    return message
