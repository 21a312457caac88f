"""What Twilio tells us about a call outside the menu: its status, its recordings, a fallback message.

Callbacks arrive at least once and in any order; each function here gives the same
result whatever is repeated, and a call with a message always ends as a ticket.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows.engine import seconds
from helpdesk.intake import open_ticket
from helpdesk.sla import SlaTable
from storage import calls as stored_calls
from storage.calls import FINAL_STATUSES, CallTransaction, save_call, start_call
from storage.contacts import identify_by_phone
from storage.models import Call, utcnow
from storage.phones import is_withheld, masked, to_e164
from storage.tickets import (
    add_voice_message,
    attach_recording,
    record_event,
    thread_mentions_recording,
)

log = logging.getLogger(__name__)

_PROGRESS = ("queued", "initiated", "ringing", "in-progress")


def caller_id(raw_from: str | None) -> str | None:
    """The caller ID Twilio reports, in E.164; None when withheld or not a number."""
    return None if is_withheld(raw_from) else to_e164(raw_from)


def get_or_start_call(session: Session, form: Mapping[str, str]) -> Call:
    """The call with this CallSid, stored (and its caller identified by number) on first sight.

    The call's row is locked until the transaction ends: the requests of one call (the
    caller's keys and Twilio's callbacks, which may race) are handled one at a time.
    Twilio may deliver two first requests of a call at once: the insert does nothing when
    the other one stored it first, so neither needs a savepoint.
    """
    call_sid = form.get("CallSid", "")
    by_sid = select(Call).where(Call.call_sid == call_sid).with_for_update()
    call = session.scalars(by_sid).one_or_none()
    if call is not None:
        return call
    caller = caller_id(form.get("From"))
    identity = identify_by_phone(session.connection(), caller) if caller is not None else None
    ids = {"contact_id": identity.contact_id, "customer_id": identity.customer_id} if identity else {}
    start_call(session.connection(), call_sid, caller, **ids)
    log.info("call %s from %s", call_sid, masked(caller))
    return session.scalars(by_sid).one()


def record_call_status(session: Session, form: Mapping[str, str], *, table: SlaTable | None = None) -> None:
    """Keep how the call ended; a call that ended with an unconfirmed message gets its ticket now.

    Every call's end comes here: a stored call not ended before is ended in one UPDATE that
    says whether a ticket is due. A ticket opened here gets its SLA deadlines from `table`,
    the table in force (None: the default).
    """
    connection = session.connection()
    status = form.get("CallStatus", "")
    if status in FINAL_STATUSES:
        duration = seconds(form.get("CallDuration"))
        ended = stored_calls.end_call(connection, form.get("CallSid", ""), status, duration, _event_time(form))
        if ended is not None:  # the usual case: a stored call, not ended before
            if ended.ticket_id is None and ended.recording_sid is not None:
                _open_hangup_ticket(session, ended.id, table)
            return
    call = stored_calls.get_or_start_call(connection, form.get("CallSid", ""), caller_id(form.get("From")), lock=True)
    if status in FINAL_STATUSES:  # a call we never saw, or a repeated end
        if call.call_status not in FINAL_STATUSES:
            call.call_status = status
            duration = seconds(form.get("CallDuration"))
            call.duration = duration
            call.ended_at = _event_time(form)
        if call.ticket_id is None and call.recording_sid is not None:
            save_call(connection, call)
            _open_hangup_ticket(session, call.id, table)
            return
    elif status in _PROGRESS and call.call_status not in FINAL_STATUSES:
        # Progress never overwrites an end that arrived first.
        if call.call_status is None or _PROGRESS.index(status) >= _PROGRESS.index(call.call_status):
            call.call_status = status
    save_call(connection, call)


def end_call_alone(db: CallTransaction, form: Mapping[str, str]) -> bool:
    """The usual status callback in one statement outside any transaction: the end of a stored call, not
    ended before, that owes no ticket. False, having written nothing, for anything else (record_call_status)."""
    status = form.get("CallStatus", "")
    if status not in FINAL_STATUSES:
        return False
    return db.end_alone(status, seconds(form.get("CallDuration")), _event_time(form))


def _open_hangup_ticket(session: Session, call_id: int, table: SlaTable | None) -> None:
    """The ticket of a call that ended with a message the caller did not confirm (the call's row is stored)."""
    call = session.get(Call, call_id, populate_existing=True)
    assert call is not None
    open_ticket(session, call, voicemail=True, opened_by="hangup", table=table)


def _event_time(form: Mapping[str, str]) -> datetime:
    """When Twilio says the event happened (its RFC 2822 `Timestamp`), or now: right for a callback kept in
    the spool and stored later too."""
    now = utcnow()
    try:
        when = parsedate_to_datetime(form.get("Timestamp", ""))
    except (TypeError, ValueError, IndexError):
        return now
    if when.tzinfo is None or not now - timedelta(days=1) <= when <= now + timedelta(minutes=5):
        return now  # no zone, or not a time of this call
    return when.astimezone(UTC)


def record_recording_status(
    session: Session, form: Mapping[str, str], purpose: str = "ticket", *, table: SlaTable | None = None
) -> Call:
    """A recording is ready (or absent): attach it to the call's ticket, or open the ticket of a caller who left.

    A recording made for a message on an existing ticket (`purpose` "message") is added to that ticket.
    """
    call = get_or_start_call(session, form)
    if form.get("RecordingStatus", "completed") != "completed":
        return call
    sid, url = form.get("RecordingSid", ""), form.get("RecordingUrl", "")
    if not sid or not url:
        return call
    if purpose == "message":
        if call.inquiry_ticket is not None:
            add_voice_message(session, call.inquiry_ticket, call.call_sid, sid, url, call.language)
        return call
    if call.recording_sid is None and call.ticket is None:
        call.recording_sid, call.recording_url = sid, url
        call.recording_duration = seconds(form.get("RecordingDuration"))
    if call.ticket is not None:
        if call.ticket.recording_sid is None and call.recording_sid in (None, sid):
            attach_recording(session, call.ticket, sid, url)
    elif call.call_status in FINAL_STATUSES and call.recording_sid is not None:
        open_ticket(session, call, voicemail=True, opened_by="hangup", table=table)
    return call


def record_fallback_message(session: Session, form: Mapping[str, str], *, table: SlaTable | None = None) -> Call:
    """A message taken while the service was failing (kept in the spool first): it becomes a ticket."""
    call = get_or_start_call(session, form)
    sid, url = form.get("RecordingSid", ""), form.get("RecordingUrl", "")
    ticket = call.ticket
    if ticket is None:
        if sid and url and call.recording_sid is None:
            call.recording_sid, call.recording_url = sid, url
        ticket = open_ticket(session, call, voicemail=True, opened_by="fallback", table=table)
        record_event(session, ticket, "fallback")
    if sid and url and sid != ticket.recording_sid:
        if ticket.recording_sid is None:
            attach_recording(session, ticket, sid, url)
        elif not thread_mentions_recording(ticket, sid):
            # The ticket holds one recording; a second message stays findable on the thread.
            record_event(session, ticket, "extra_recording", recording_sid=sid, url=url)
    return call
