"""Opening tickets, writing their thread, and finding them again."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from storage import outbox
from storage.models import Call, Ticket, TicketEvent, User, VoiceMessage, utcnow
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


def open_ticket_for_call(session: Session, call: Call, urgency: str, *, voicemail: bool, opened_by: str) -> Ticket:
    """Open the one ticket of this call (or return it if it exists) and queue its follow-up work.

    `opened_by` says who, as a code the thread puts into words: "line" (the caller on the
    line), "voicemail" (a message left on the line), "hangup" (the caller hanging up after
    the message) or "fallback" (a message taken while the line was failing).

    The contact is the one known by caller ID, and nobody else: without one the ticket
    needs a dispatcher's match (a typed customer code is provisional, the contact a typed
    callback number belongs to only a suggestion), and no email goes to the customer.

    Idempotent: the call's CallSid is unique on tickets, so a repeated webhook never
    opens a second ticket. The caller flushes and commits.
    """
    if call.ticket is not None:
        return call.ticket
    existing = session.scalars(select(Ticket).where(Ticket.call_sid == call.call_sid)).one_or_none()
    if existing is not None:
        call.ticket = existing
        return existing

    ticket = Ticket(
        urgency=urgency,
        channel="phone",
        language=call.language,
        caller=call.caller,
        callback_number=call.callback_number,
        customer_id=call.customer_id,
        contact_id=call.contact_id,
        needs_match=call.contact_id is None,
        suggested_contact_id=call.suggested_contact_id,
        voicemail=voicemail,
        severity=call.severity,
        call_sid=call.call_sid,
        recording_sid=call.recording_sid,
        recording_url=call.recording_url,
    )
    # No savepoint: whoever opens a call's ticket holds the call's row (storage.calls,
    # ivr.voice.calls), so the caller's key and a callback cannot both get here; the unique
    # CallSid on tickets stays the backstop (the loser's transaction fails, and is retried).
    session.add(ticket)
    session.flush()  # the id gives the serial, and so the number
    ticket.number = ticket_number(FIRST_SERIAL + ticket.id - 1)
    call.ticket = ticket
    record_event(session, ticket, "opened", **_opening_facts(call, ticket, opened_by))
    if call.recording_sid is None:
        record_event(session, ticket, "no_audio")
    outbox.add(session, outbox.FOLLOW_UP, follow_up_key(ticket.id), ticket_id=ticket.id)
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


def _opening_facts(call: Call, ticket: Ticket, opened_by: str) -> dict[str, object]:
    """What the opening entry says: who opened the ticket, how urgent, and who the caller may be."""
    facts: dict[str, object] = {"by": opened_by, "urgency": ticket.urgency}
    if call.severity is not None:
        facts["severity"] = call.severity
    facts["unregistered"] = call.customer is None
    if call.customer is not None and call.contact is None:  # a typed code: provisional
        facts["customer"], facts["customer_code"] = call.customer.name, call.customer.code
    if call.callback_number:
        facts["callback_number"] = call.callback_number
        if call.suggested_contact is not None:
            suggested = call.suggested_contact
            facts["suggested_contact_id"] = suggested.id
            facts["suggested_contact"] = suggested.name
            facts["suggested_customer"] = suggested.customer.name
    facts["voicemail"] = ticket.voicemail
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


_tickets = Ticket.__table__
_OF_CONTACT = (
    select(_tickets.c.id, _tickets.c.number, _tickets.c.status, _tickets.c.updated_at)
    .where(_tickets.c.contact_id == bindparam("contact_id"), _tickets.c.status.in_(bindparam("phases", expanding=True)))
    .order_by(_tickets.c.created_at.desc(), _tickets.c.id.desc())
)


def get_tickets_of_contact(connection: Connection, contact_id: int, phases: Collection[str]) -> list[TicketSummary]:
    """The contact's tickets in one of `phases` (helpdesk.phases names them), newest first, in one Core query."""
    rows = connection.execute(_OF_CONTACT, {"contact_id": contact_id, "phases": list(phases)})
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
