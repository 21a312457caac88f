"""The worker's jobs, one outbox row each (storage.outbox):

- a new ticket's follow-up: fetch its recording, transcribe it, queue its emails;
- a spoken message added to a ticket: fetch, transcribe, queue the notice;
- one email: claim it, send it, keep on the thread how it went;
- a critical ticket's SMS to the on-call technician, and its reminder (ivr.jobs.oncall).

No database transaction stays open across network I/O or slow work. Each step reads
what it needs in a short transaction, does the slow part with none open, and writes its
result through `outbox.hold()`, which commits only while the job's lease is its own. A
heartbeat renews the lease while a step runs. Safe to run twice: each step records that
it is done, and an email is claimed in the database before it is sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from rq import get_current_job
from sqlalchemy.orm import Session, sessionmaker

from helpdesk import deadlines, notices, oncall, sla
from helpdesk.urgency import raised_by_transcript
from ivr.jobs import mail
from ivr.jobs.oncall import alert_on_call, remind_on_call
from ivr.jobs.recordings import RecordingRefused, RecordingUnavailable, download_recording
from ivr.jobs.reports import send_monthly_reports
from ivr.jobs.transcription import TranscriptionError, engine_for
from ivr.settings import Settings
from ivr.worker import runtime
from storage import outbox, sending
from storage.models import Email, Ticket, VoiceMessage, utcnow
from storage.outbox import Lease, LeaseLost
from storage.tickets import record_event

log = logging.getLogger(__name__)

DOWNLOAD_RUNS = 3  # job runs that may fail to fetch the audio before the emails go without it

# The thread's entry for each kind of email sent (the console and the API read these kinds).
SENT_EVENT = {
    mail.CONFIRMATION: "email",
    mail.REFERENT_COPY: "email",
    mail.DISPATCH: "dispatch_email",
    mail.CONFIRMATION_REFUSED: "dispatch_email",
    mail.VOICE_MESSAGE: "voice_message_email",
    mail.PIN_LOCKED: "dispatch_email",
    mail.ONCALL_REMINDER: "dispatch_email",
}


class EmailInFlight(Exception):
    """Another job holds this email's claim (it may be sending it now): try again later."""


@dataclass(frozen=True)
class Job:
    """One run of one outbox row: its lease, and the ways to read and write under it."""

    settings: Settings
    make_session: sessionmaker[Session]
    lease: Lease

    def hold(self) -> AbstractContextManager[Session]:
        """A short transaction for this job's writes, committed only while the lease is its own."""
        return outbox.hold(self.make_session, self.lease, self.settings.lease_seconds)

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renew the lease in the background while the job works (a long transcription, say)."""
        stop = threading.Event()
        every = max(self.settings.lease_seconds / 3, 0.2)

        def beat() -> None:
            while not stop.wait(every):
                try:
                    outbox.renew(self.make_session, self.lease, self.settings.lease_seconds)
                except LeaseLost:
                    return  # the job's next write finds out and stops
                except Exception as error:  # the database hiccuped: try again at the next beat
                    log.warning("work %s: could not renew the lease (%s)", self.lease.work_id, type(error).__name__)

        thread = threading.Thread(target=beat, name=f"lease-{self.lease.work_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)


def run_pending_work(work_id: int) -> str:
    """Run one outbox row; returns what happened (done, again, skipped, lost, failed)."""
    settings, make_session = runtime.settings(), runtime.session_factory()
    with make_session() as session, session.begin():
        lease = outbox.take_lease(session, work_id, settings.lease_seconds)
    if lease is None:
        log.info("work %s is done or running elsewhere", work_id)
        return "skipped"
    job = Job(settings, make_session, lease)
    if lease.starts > outbox.MAX_STARTS:
        _give_up(job, lease.starts - 1)
        return "failed"
    try:
        with job.heartbeat():
            RUNNERS[lease.kind](job)
        return "done" if outbox.finish(make_session, lease) else "again"
    except LeaseLost:
        log.warning("work %s: its lease passed to another job; this run stops", work_id)
        return "lost"
    except Exception as error:
        _record_failure(job, error)
        raise


# -- a new ticket ------------------------------------------------------------------------


def follow_up_ticket(job: Job) -> None:
    """Fetch and transcribe the ticket's recording, then queue its emails."""
    ticket_id = job.lease.ticket_id
    assert ticket_id is not None
    _fetch_recording(job, Ticket, ticket_id, ticket_id)
    _transcribe(job, Ticket, ticket_id, ticket_id)
    with job.hold() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            return
        drafts = mail.ticket_emails(ticket, job.settings)
        for draft in drafts:  # once each: a second run (a late recording) queues nothing new
            notices.queue(session, draft, ticket)
        said = any(event.kind == "no_confirmation" for event in ticket.events)
        if not said and not any(draft.kind == mail.CONFIRMATION for draft in drafts):
            why = "not_in_directory" if ticket.contact is None else "not_confirmed"
            record_event(session, ticket, "no_confirmation", why=why)


# -- a spoken message on a ticket ---------------------------------------------------------


def follow_up_message(job: Job) -> None:
    """Fetch and transcribe a message added by phone, then queue its notice."""
    message_id, ticket_id = job.lease.message_id, job.lease.ticket_id
    assert message_id is not None and ticket_id is not None
    _fetch_recording(job, VoiceMessage, message_id, ticket_id)
    _transcribe(job, VoiceMessage, message_id, ticket_id)
    with job.hold() as session:
        message, ticket = session.get(VoiceMessage, message_id), session.get(Ticket, ticket_id)
        if message is None or ticket is None or message.notified_at is not None:
            return
        draft = mail.voice_message_notice(message, ticket, job.settings)
        if draft is not None:
            notices.queue(session, draft, ticket)
        message.notified_at = utcnow()


# -- the shared steps ----------------------------------------------------------------------


Audio = type[Ticket] | type[VoiceMessage]


def _audio_row(session: Session, model: Audio, row_id: int) -> Ticket | VoiceMessage | None:
    """The ticket, or the message on it, whose recording a step works on."""
    return session.get(Ticket, row_id) if model is Ticket else session.get(VoiceMessage, row_id)


def _fetch_recording(job: Job, model: Audio, row_id: int, ticket_id: int) -> None:
    """Download the audio of a ticket or of a message on it; the ticket's thread tells how it went."""
    with job.make_session() as session:
        row = _audio_row(session, model, row_id)
        if row is None or row.recording_sid is None or row.recording_path or row.recording_problem:
            return
        sid, url = row.recording_sid, row.recording_url or ""
    settings = job.settings
    try:  # no transaction is open while Twilio is asked, waited for and read
        path = download_recording(
            url,
            sid,
            settings.recordings_dir,
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            allowed_hosts=settings.twilio_recording_hosts,
            # 8 kHz 16-bit audio is 16 kB a second: generous room for MAX_RECORDING_SECONDS.
            max_bytes=settings.max_recording_seconds * 64_000 + 1_000_000,
        )
    except RecordingRefused as error:
        _write_audio(job, model, row_id, ticket_id, "recording_refused", problem="refused", error=str(error))
        return
    except RecordingUnavailable as error:
        if job.lease.failures + 1 < DOWNLOAD_RUNS:
            raise  # a later run tries again
        _write_audio(job, model, row_id, ticket_id, "recording_unavailable", problem="unavailable", error=str(error))
        return
    _write_audio(job, model, row_id, ticket_id, "recording", path=path, bytes=path.stat().st_size)


def _write_audio(
    job: Job,
    model: Audio,
    row_id: int,
    ticket_id: int,
    kind: str,
    *,
    path: Path | None = None,
    problem: str | None = None,
    **facts: object,
) -> None:
    with job.hold() as session:
        row = _audio_row(session, model, row_id)
        ticket = session.get(Ticket, ticket_id)
        if row is None or ticket is None:
            return
        row.recording_path = str(path) if path is not None else None
        row.recording_problem = problem
        record_event(session, ticket, kind, **facts)


def _transcribe(job: Job, model: Audio, row_id: int, ticket_id: int) -> None:
    """The words of the recording, on the row and the thread; a ticket's urgency may rise with them."""
    with job.make_session() as session:
        row = _audio_row(session, model, row_id)
        if row is None or not row.recording_path or row.transcribed_at is not None:
            return
        audio, language = Path(row.recording_path), row.language
    failure = None
    try:  # slow: seconds of CPU, with no transaction open (the heartbeat keeps the lease)
        words: str | None = engine_for(job.settings.whisper_model, job.settings.model_cache_dir).transcribe(
            audio, language
        )
    except TranscriptionError as error:
        words, failure = None, str(error)
    with job.hold() as session:
        row = _audio_row(session, model, row_id)
        ticket = session.get(Ticket, ticket_id)
        if row is None or ticket is None:
            return
        row.transcript, row.transcribed_at = words, utcnow()
        on_ticket = isinstance(row, Ticket)
        if failure is not None:
            record_event(session, ticket, "transcription_failed", error=failure)
        else:  # no words: the recording holds no speech, and the thread says so
            kind = "transcript" if on_ticket else "voice_message_transcript"
            record_event(session, ticket, kind, words=words or "")
            if on_ticket and words:
                _raise_urgency(session, ticket, words, sla.load(job.settings.sla_table))


def _raise_urgency(session: Session, ticket: Ticket, words: str, table: sla.SlaTable) -> None:
    """Raise the urgency the transcript's words call for, and count the SLA deadlines again (the entry says them)."""
    raised = raised_by_transcript(ticket.urgency, words)
    if raised:
        level, said = raised
        facts: dict[str, object] = {"from": ticket.urgency, "to": level, "words": said}
        before = deadlines.due(ticket, table)
        ticket.urgency = level
        facts.update(deadlines.count(ticket, table, before))
        record_event(session, ticket, "urgency_raised", **facts)
        oncall.alert_if_critical(session, ticket, table)


# -- one email ----------------------------------------------------------------------------


def send_email(job: Job) -> None:
    """Claim the email, send it with no transaction open, and keep how it went."""
    email_id, token = job.lease.email_id, job.lease.token
    assert email_id is not None
    with job.hold() as session:
        email = session.get(Email, email_id)
        if email is None or email.sent_at is not None or email.refused_at is not None:
            return
        if not sending.claim(session, Email, email_id, token):
            raise EmailInFlight(f"email {email_id} is claimed by another job")
        number = email.ticket.number if email.ticket is not None else None
        message = mail.compose(email, job.settings, number)
    try:
        mail.send(message, job.settings)
    except mail.Refused as refusal:
        # Only the claim's holder writes (its token): a run that lost its lease may still say what happened.
        with job.make_session() as session, session.begin():
            if sending.record_refused(session, Email, email_id, token, refusal.answer):
                _email_refused(session, email_id, job.settings)
        return
    except Exception:
        with job.make_session() as session, session.begin():
            sending.release(session, Email, email_id, token)
        raise
    with job.make_session() as session, session.begin():
        if sending.record_sent(session, Email, email_id, token):
            _email_sent(session, email_id)


def _email_sent(session: Session, email_id: int) -> None:
    email = session.get(Email, email_id)
    if email is None or email.ticket is None:
        return
    ticket = email.ticket
    record_event(session, ticket, SENT_EVENT.get(email.kind, "email"), email=email.kind, to=email.to_address)
    if email.kind == mail.CONFIRMATION:
        ticket.confirmation_sent_at = email.sent_at
    elif email.kind == mail.DISPATCH:
        ticket.dispatch_sent_at = email.sent_at


def _email_refused(session: Session, email_id: int, settings: Settings) -> None:
    """On the thread with the server's answer; a refused confirmation is told to the dispatchers."""
    email = session.get(Email, email_id)
    if email is None:
        return
    log.warning("email %s (%s) refused for good by the SMTP server", email_id, email.kind)
    ticket = email.ticket
    if ticket is None:
        return
    record_event(session, ticket, "email_refused", email=email.kind, to=email.to_address, answer=email.refusal)
    if email.kind == mail.CONFIRMATION and settings.dispatch_email:
        notice = mail.confirmation_refused_notice(ticket, email, settings.dispatch_email)
        notices.queue(session, notice, ticket)


RUNNERS: dict[str, Callable[[Job], None]] = {
    outbox.FOLLOW_UP: follow_up_ticket,
    outbox.VOICE_MESSAGE: follow_up_message,
    outbox.EMAIL: send_email,
    outbox.ONCALL_SMS: alert_on_call,
    outbox.ONCALL_REMINDER: remind_on_call,
    outbox.MONTHLY_REPORTS: send_monthly_reports,
}


# -- when a run fails ------------------------------------------------------------------------


def _record_failure(job: Job, error: Exception) -> None:
    """Keep why the run failed; on the last retry, mark the work failed and say so on the thread."""
    rq_job = get_current_job()
    final = rq_job is None or not rq_job.retries_left
    reason = f"{type(error).__name__}: {error}"[:500]
    retry_in = None
    if not final and rq_job is not None:
        # RQ's scheduler runs the retry; the relay leaves the row alone meanwhile.
        intervals = job.settings.retry_intervals
        used = len(intervals) - (rq_job.retries_left or 0)
        retry_in = timedelta(seconds=intervals[min(max(used, 0), len(intervals) - 1)] + 60)
    if outbox.fail(job.make_session, job.lease, reason, final=final, retry_in=retry_in) and final:
        _say_failed(job, error=reason)
    log.warning(
        "work %s (%s) failed (%s)%s",
        job.lease.work_id,
        job.lease.kind,
        type(error).__name__,
        "; giving up" if final else "; will retry",
    )


def _give_up(job: Job, starts: int) -> None:
    why = f"it was started {starts} times and never ended (killed, out of memory?)"
    with job.hold() as session:
        outbox.fail_now(session, job.lease, why)
    _say_failed(job, starts=starts)
    log.error("work %s (%s) failed for good: %s", job.lease.work_id, job.lease.kind, why)


def _say_failed(job: Job, **cause: object) -> None:
    """On the ticket's thread: what failed for good and why (`error`, or the `starts` of runs that never ended)."""
    if job.lease.ticket_id is None:
        return
    with job.make_session() as session, session.begin():
        ticket = session.get(Ticket, job.lease.ticket_id)
        if ticket is None:
            return
        if job.lease.kind == outbox.EMAIL:
            email = session.get(Email, job.lease.email_id)
            to = email.to_address if email is not None else "?"
            record_event(session, ticket, "email_failed", to=to, **cause)
        else:
            record_event(session, ticket, "follow_up_failed", work=job.lease.kind, **cause)
