"""Opening tickets, writing their thread, and finding them again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import outbox
from storage.models import Call, Contact, Ticket, TicketEvent, VoiceMessage, utcnow
from storage.ticket_numbers import FIRST_SERIAL, ticket_number

URGENCIES = ("low", "normal", "high", "critical")
PHASES = ("received", "triage", "diagnostics", "intervention", "resolved", "closed")
OPEN_PHASES = PHASES[:4]


def get_ticket_by_number(session: Session, number: str) -> Ticket | None:
    return session.scalars(select(Ticket).where(Ticket.number == number)).one_or_none()


def get_tickets_of_caller(session: Session, caller: str) -> list[Ticket]:
    return list(
        session.scalars(
            select(Ticket).where(Ticket.caller == caller).order_by(Ticket.created_at.desc(), Ticket.id.desc())
        )
    )


def record_event(session: Session, ticket: Ticket, kind: str, text: str, at: datetime | None = None) -> TicketEvent:
    """Append an entry to the ticket's thread."""
    event = TicketEvent(ticket=ticket, kind=kind, text=text, at=at or utcnow())
    session.add(event)
    ticket.updated_at = utcnow()
    return event


def open_ticket_for_call(session: Session, call: Call, urgency: str, *, voicemail: bool, opened_by: str) -> Ticket:
    """Open the one ticket of this call (or return it if it exists) and queue its follow-up work.

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
    try:
        # A savepoint: the same call's ticket may be opened at this moment by another
        # request (the caller's key and a callback racing); the unique CallSid decides.
        with session.begin_nested():
            session.add(ticket)
            session.flush()  # the id gives the serial, and so the number
    except IntegrityError:
        existing = session.scalars(select(Ticket).where(Ticket.call_sid == call.call_sid)).one()
        call.ticket = existing
        return existing
    ticket.number = ticket_number(FIRST_SERIAL + ticket.id - 1)
    call.ticket = ticket
    record_event(session, ticket, "opened", _opening_note(call, ticket, opened_by))
    if call.recording_sid is None:
        record_event(session, ticket, "no_audio", "The caller left no recorded description.")
    outbox.add(session, outbox.FOLLOW_UP, follow_up_key(ticket.id), ticket_id=ticket.id)
    return ticket


def follow_up_key(ticket_id: int) -> str:
    """The outbox key of a new ticket's follow-up (recording, transcript, emails)."""
    return f"{outbox.FOLLOW_UP}:{ticket_id}"


def attach_recording(session: Session, ticket: Ticket, recording_sid: str, recording_url: str) -> bool:
    """Attach a recording that arrived after the ticket was opened; False if it already has one."""
    if ticket.recording_sid is not None:
        return False
    ticket.recording_sid = recording_sid
    ticket.recording_url = recording_url
    record_event(session, ticket, "recording", "The recording of the call arrived after the ticket was opened.")
    # The follow-up may be running or done (emails queued without a transcript): run it
    # again for the transcript; the emails it already queued are not sent twice.
    outbox.reopen(session, follow_up_key(ticket.id))
    return True


def _opening_note(call: Call, ticket: Ticket, opened_by: str) -> str:
    severity = {1: "everything is stopped", 2: "it partly works", 3: "a request or information"}
    parts = [f"Ticket opened by {opened_by}, provisional urgency {ticket.urgency}."]
    if call.severity in severity:
        parts.append(f"Caller's triage: {severity[call.severity]}.")
    if call.customer is None:
        parts.append("Unregistered caller: match to a customer.")
    elif call.contact is None:
        customer = call.customer
        parts.append(f"Customer code typed by the caller: {customer.name} ({customer.code}), provisional: to confirm.")
    if call.callback_number:
        parts.append(f"Callback number typed by the caller (the caller ID was withheld): {call.callback_number}.")
        if call.suggested_contact is not None:
            suggested = call.suggested_contact
            parts.append(f"Suggested match: {suggested.name}, {suggested.customer.name} — to confirm.")
    if ticket.voicemail:
        parts.append("Voicemail-backed: the caller did not confirm the message on the line.")
    return " ".join(parts)


def retry_failed_work(session: Session) -> int:
    """Make work that failed for good pending again; the relay enqueues it. Returns how many."""
    failed = outbox.retry_failed(session)
    for work in failed:
        ticket = session.get(Ticket, work.ticket_id) if work.ticket_id is not None else None
        if ticket is not None:
            record_event(session, ticket, "follow_up_retried", f"The failed {work.kind} was sent for another round.")
    return len(failed)


def get_open_tickets_of_contact(session: Session, contact_id: int) -> list[Ticket]:
    """The contact's tickets not yet resolved or closed, newest first."""
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.contact_id == contact_id, Ticket.status.in_(OPEN_PHASES))
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        )
    )


def caller_may_hear(session: Session, ticket: Ticket, caller: str | None) -> bool:
    """True when the caller ID `caller` (E.164) is the number that opened the ticket, or a contact's
    of the ticket's customer, once that customer is confirmed (a typed code is only a claim)."""
    if caller is None:
        return False
    if ticket.caller == caller:
        return True
    if ticket.customer_id is None or ticket.needs_match:
        return False
    match = select(Contact.id).where(Contact.customer_id == ticket.customer_id, Contact.phone == caller)
    return session.scalars(match).first() is not None


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
    record_event(session, ticket, "voice_message", "The caller added a spoken message by phone; transcript to follow.")
    outbox.add(
        session,
        outbox.VOICE_MESSAGE,
        f"{outbox.VOICE_MESSAGE}:{message.id}",
        ticket_id=ticket.id,
        message_id=message.id,
    )
    return message
