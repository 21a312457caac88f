"""The worker's jobs: the follow-up of a new ticket (fetch the recording, transcribe it,
send the emails) and of a spoken message added to a ticket (fetch, transcribe, notify).

Safe to run twice, and run at least once: each step records that it is done on the
ticket, and the job holds a lease on its PendingWork row so two copies never work
the same ticket at once. An email is marked sent only after the SMTP server took it:
a crash in between resends it once, with the same Message-ID (we prefer a rare
duplicate to a lost confirmation).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from rq import get_current_job
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from callflows.urgency import raised_by_transcript
from ivr import runtime
from ivr.jobs import mail
from ivr.jobs.recordings import RecordingRefused, RecordingUnavailable, download_recording
from ivr.jobs.transcription import TranscriptionError, engine_for
from ivr.settings import Settings
from storage.models import PendingWork, Ticket, VoiceMessage, utcnow
from storage.tickets import VOICE_MESSAGE, record_event

log = logging.getLogger(__name__)

DOWNLOAD_RUNS = 3  # job runs that may fail to fetch the audio before the emails go without it


def run_pending_work(work_id: int) -> str:
    """Run one PendingWork row (a new ticket's follow-up or a voice message); returns what it did."""
    settings, make_session = runtime.settings(), runtime.session_factory()
    if not _take_lease(make_session, work_id, settings.lease_seconds):
        log.info("work %s is done or running elsewhere", work_id)
        return "skipped"
    try:
        with make_session() as session:
            work = session.get(PendingWork, work_id)
            ticket = session.get(Ticket, work.ticket_id) if work else None
            if work is None or ticket is None:
                log.warning("work %s: its ticket is gone", work_id)
                return "gone"
            if work.kind == VOICE_MESSAGE:
                _follow_up_message(session, ticket, work, settings)
            else:
                _follow_up_ticket(session, ticket, work, settings)
            work.done_at, work.lease_until, work.last_error = utcnow(), None, None
            session.commit()
            return "done"
    except Exception as error:
        _record_failure(make_session, work_id, error, settings)
        raise


def _follow_up_ticket(session: Session, ticket: Ticket, work: PendingWork, settings: Settings) -> None:
    _fetch_recording(session, ticket, ticket, work, settings)
    _renew_lease(session, work, settings)
    _transcribe(session, ticket, settings)
    _renew_lease(session, work, settings)
    _send_confirmation(session, ticket, settings)
    _send_dispatch_notice(session, ticket, settings)


def _follow_up_message(session: Session, ticket: Ticket, work: PendingWork, settings: Settings) -> None:
    message = session.get(VoiceMessage, work.message_id)
    if message is None:
        return
    _fetch_recording(session, message, ticket, work, settings)
    _renew_lease(session, work, settings)
    if message.recording_path and message.transcribed_at is None:
        transcript = _transcript_of(session, ticket, Path(message.recording_path), message.language, settings)
        message.transcript, message.transcribed_at = transcript, utcnow()
        if transcript:
            record_event(session, ticket, "voice_message_transcript", transcript)
        elif transcript == "":
            record_event(session, ticket, "voice_message_transcript", "The message holds no speech.")
        session.commit()
    if message.notified_at is None:
        notice = mail.voice_message_notice(message, ticket, settings)
        if notice is not None:
            mail.send(notice, settings)
            record_event(session, ticket, "voice_message_email", f"Message sent on to {notice['To']}.")
        message.notified_at = utcnow()
        session.commit()


def _take_lease(make_session, work_id: int, seconds: int) -> bool:  # type: ignore[no-untyped-def]
    now = utcnow()
    with make_session() as session, session.begin():
        taken = session.execute(
            update(PendingWork)
            .where(
                PendingWork.id == work_id,
                PendingWork.done_at.is_(None),
                PendingWork.failed_at.is_(None),
                or_(PendingWork.lease_until.is_(None), PendingWork.lease_until < now),
            )
            .values(lease_until=now + timedelta(seconds=seconds))
        )
        return taken.rowcount == 1


def _renew_lease(session: Session, work: PendingWork, settings: Settings) -> None:
    work.lease_until = utcnow() + timedelta(seconds=settings.lease_seconds)
    session.commit()


def _fetch_recording(
    session: Session, audio: Ticket | VoiceMessage, ticket: Ticket, work: PendingWork, settings: Settings
) -> None:
    """Download the audio of a ticket or of a message on it; the ticket's thread tells how it went."""
    if audio.recording_sid is None or audio.recording_path or audio.recording_problem:
        return
    try:
        path = download_recording(
            audio.recording_url or "",
            audio.recording_sid,
            settings.recordings_dir,
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            allowed_hosts=settings.twilio_recording_hosts,
            # 8 kHz 16-bit audio is 16 kB a second: generous room for MAX_RECORDING_SECONDS.
            max_bytes=settings.max_recording_seconds * 64_000 + 1_000_000,
        )
    except RecordingRefused as error:
        audio.recording_problem = "refused"
        record_event(session, ticket, "recording_refused", f"The recording was not fetched: {error}.")
        session.commit()
        return
    except RecordingUnavailable as error:
        work.failures += 1
        if work.failures < DOWNLOAD_RUNS:
            session.commit()
            raise
        audio.recording_problem = "unavailable"
        record_event(session, ticket, "recording_unavailable", f"The recording could not be downloaded: {error}.")
        session.commit()
        return
    audio.recording_path = str(path)
    record_event(session, ticket, "recording", f"Recording downloaded ({path.stat().st_size} bytes).")
    session.commit()


def _transcribe(session: Session, ticket: Ticket, settings: Settings) -> None:
    if not ticket.recording_path or ticket.transcribed_at is not None:
        return
    transcript = _transcript_of(session, ticket, Path(ticket.recording_path), ticket.language, settings)
    ticket.transcript, ticket.transcribed_at = transcript, utcnow()
    if transcript:
        record_event(session, ticket, "transcript", transcript)
        raised = raised_by_transcript(ticket.urgency, transcript)
        if raised:
            level, words = raised
            record_event(
                session,
                ticket,
                "urgency_raised",
                f'Urgency raised from {ticket.urgency} to {level}: the caller said "{words}".',
            )
            ticket.urgency = level
    elif transcript == "":
        record_event(session, ticket, "transcript", "The recording holds no speech: the transcript is empty.")
    session.commit()


def _transcript_of(session: Session, ticket: Ticket, audio: Path, language: str, settings: Settings) -> str | None:
    """The words of a recording; None (and a note on the thread) when it cannot be transcribed."""
    try:
        return engine_for(settings.whisper_model, settings.model_cache_dir).transcribe(audio, language)
    except TranscriptionError as error:
        record_event(
            session, ticket, "transcription_failed", f"A recording could not be transcribed ({error}); listen to it."
        )
        return None


def _send_confirmation(session: Session, ticket: Ticket, settings: Settings) -> None:
    if ticket.confirmation_sent_at is not None:
        return
    message = mail.confirmation(ticket, settings)
    if message is None:
        ticket.confirmation_sent_at = utcnow()
        record_event(session, ticket, "no_confirmation", "No confirmation email: the caller is not in the directory.")
    else:
        mail.send(message, settings)
        ticket.confirmation_sent_at = utcnow()
        cc = f", cc {message['Cc']}" if message["Cc"] else ""
        record_event(session, ticket, "email", f"Confirmation emailed to {message['To']}{cc}.")
    session.commit()


def _send_dispatch_notice(session: Session, ticket: Ticket, settings: Settings) -> None:
    if ticket.dispatch_sent_at is not None:
        return
    message = mail.dispatch_notice(ticket, settings)
    if message is not None:
        mail.send(message, settings)
        record_event(session, ticket, "dispatch_email", f"Dispatchers notified at {message['To']}.")
    ticket.dispatch_sent_at = utcnow()
    session.commit()


def _record_failure(make_session, work_id: int, error: Exception, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Keep why the run failed; on the last retry, mark the work failed and say so on the thread."""
    job = get_current_job()
    final = job is None or not job.retries_left
    reason = f"{type(error).__name__}: {error}"[:500]
    with make_session() as session, session.begin():
        work = session.get(PendingWork, work_id)
        if work is None:
            return
        work.last_error = reason
        now = utcnow()
        if final:
            work.failed_at, work.lease_until = now, None
            ticket = session.get(Ticket, work.ticket_id)
            if ticket is not None:
                record_event(
                    session,
                    ticket,
                    "follow_up_failed",
                    f"The follow-up failed for good ({reason}); `flask --app wsgi retry-failed` runs it again.",
                )
        else:
            # RQ's scheduler runs the retry; keep the relay from sending another copy meanwhile
            # (enqueued_at in the future), but free the lease for the retry itself.
            intervals = settings.retry_intervals
            used = len(intervals) - (job.retries_left or 0 if job else 0)
            wait = timedelta(seconds=intervals[min(max(used, 0), len(intervals) - 1)])
            work.lease_until = None
            work.enqueued_at = now + wait
    log.warning("follow-up %s failed (%s)%s", work_id, type(error).__name__, "; giving up" if final else "; will retry")
