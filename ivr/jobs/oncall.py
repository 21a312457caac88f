"""On-call alerts in the worker: the SMS to the on-call technician through Twilio's Messages API, and the
reminder at half the response time (helpdesk.oncall queues both, with the ticket or its change of urgency).

When the first SMS goes: at once, without waiting for the transcript. Its work is committed
with the ticket and the relay hands it to RQ at the front of the queue, ahead of the ticket's
follow-up; the transcript comes only after the recording is downloaded (Twilio's media can
take seconds to minutes to be ready, and the download retries for longer) and transcribed
(seconds to minutes of CPU). Waiting for it would delay the one message that must not wait,
for words the console link shows anyway. So the SMS carries the transcript's first words only
when they are already known: a ticket that the transcript itself made critical, or one a
dispatcher made critical later. The reminder, at half the response time, carries the words
known by then.

Each SMS is a row (storage.sms), written once with its words when its job first runs, claimed
with an update that succeeds once before it is sent, and marked sent (with Twilio's SID) or
refused: a repeated job, a retry or a second worker never sends it twice. Twilio down (a 5xx,
no connection, a timeout, 429) releases the claim and raises, for RQ's retries; a refusal (a
4xx: a number Twilio will not text, say) is kept on the thread with Twilio's answer and not
tried again. A crash between Twilio's answer and the write may send it once more, after the
claim runs out (10 minutes): as with the emails, a rare duplicate rather than a lost alert.

The reminder does nothing once a person has acted on the ticket (its response clock stopped)
or the ticket is no longer open. Otherwise it emails the dispatchers (DISPATCH_EMAIL, an email
row of its own) and sends the SMS again. Logs name numbers masked, never the auth token.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from twilio.base.exceptions import TwilioRestException

import prompts
from helpdesk import notices
from helpdesk.deadlines import due
from helpdesk.notices import Draft, written_when
from helpdesk.phases import OPEN_PHASES
from helpdesk.sla import load as load_sla
from helpdesk.thread import HELP_DESK_ZONE
from ivr.jobs import mail
from ivr.settings import Settings
from ivr.twilio_number import twilio_client
from storage import sending
from storage.models import TextMessage, Ticket
from storage.phones import masked
from storage.sms import write_text_message
from storage.tickets import record_event

if TYPE_CHECKING:
    from ivr.jobs.follow_up import Job

log = logging.getLogger(__name__)

ALERT, REMINDER = "alert", "reminder"  # the two SMS of a critical ticket (the thread's [words.oncall_alert])
LANGUAGE = "it"  # the help desk's language: the on-call technician and the dispatchers read Italian
# The console's page of a ticket (ivr.console.ticket; a test keeps the two the same): the worker builds no app.
CONSOLE_TICKET_PATH = "/console/tickets/{number}"
FIRST_WORDS, FIRST_CHARS = 12, 100  # how much of the transcript an SMS quotes
TWILIO_TIMEOUT = 30.0  # seconds for each request to Twilio's API
# Twilio's 4xx answers that are not about this message: our credentials, a timeout, too many requests. Retried.
TEMPORARY_4XX = frozenset({401, 408, 429})


class SmsRefused(Exception):
    """Twilio refused this SMS for good (a 4xx); `answer` is what it said."""

    def __init__(self, answer: str):
        super().__init__(answer)
        self.answer = answer


class SmsFailed(Exception):
    """Twilio could not take the SMS now (a 5xx, too many requests): a retry may."""


class SmsInFlight(Exception):
    """Another job holds this SMS's claim (it may be sending it now): try again later."""


def alert_on_call(job: Job) -> None:
    """A ticket became critical: the on-call technician gets an SMS now."""
    _alert(job, ALERT)


def remind_on_call(job: Job) -> None:
    """Half the critical ticket's response time has passed: if nobody has acted, tell the dispatchers and text again."""
    _alert(job, REMINDER)


def _alert(job: Job, alert: str) -> None:
    settings, token, ticket_id = job.settings, job.lease.token, job.lease.ticket_id
    assert ticket_id is not None
    with job.hold() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            return
        number = ticket.number or ""
        if alert == REMINDER:
            if ticket.first_response_at is not None or ticket.status not in OPEN_PHASES:
                log.info("ticket %s was acted on before half its response time: no reminder", number)
                return
            if settings.dispatch_email:  # once: keyed by the ticket
                notices.queue(session, reminder_notice(ticket, settings, settings.dispatch_email), ticket)
        if not settings.oncall_sms_to:
            log.info("ticket %s: no ONCALL_SMS_TO, no SMS", number)
            return
        sms = write_text_message(
            session,
            key=f"oncall_{alert}:{ticket.id}",
            kind=alert,
            ticket=ticket,
            to=settings.oncall_sms_to,
            body=sms_body(ticket, alert, settings),
        )
        if sms.sent_at is not None or sms.refused_at is not None:
            return
        if not sending.claim(session, TextMessage, sms.id, token):
            raise SmsInFlight(f"SMS {sms.id} is claimed by another job")
        sms_id, to, body = sms.id, sms.to_number, sms.body
    try:  # no transaction is open while Twilio is asked
        sid = send_sms(settings, to, body)
    except SmsRefused as refusal:
        answer = refusal.answer.replace(to, masked(to))
        with job.make_session() as session, session.begin():
            if sending.record_refused(session, TextMessage, sms_id, token, answer):
                ticket = session.get(Ticket, ticket_id)
                if ticket is not None:
                    record_event(session, ticket, "oncall_sms_refused", alert=alert, to=masked(to), answer=answer)
        log.warning("ticket %s: Twilio refused the on-call %s to %s", number, alert, masked(to))
        return
    except Exception:
        with job.make_session() as session, session.begin():
            sending.release(session, TextMessage, sms_id, token)
        raise
    with job.make_session() as session, session.begin():
        if sending.record_sent(session, TextMessage, sms_id, token, twilio_sid=sid[:64]):
            ticket = session.get(Ticket, ticket_id)
            if ticket is not None:
                record_event(session, ticket, "oncall_sms", alert=alert, to=masked(to), sid=sid)
    log.info("ticket %s: on-call %s sent by SMS to %s", number, alert, masked(to))


def send_sms(settings: Settings, to: str, body: str) -> str:
    """Send one SMS through Twilio's Messages API; its SID.

    SmsRefused for a 4xx about this message (not tried again); SmsFailed for Twilio's 5xx and
    the 4xx that are not about it (TEMPORARY_4XX); a connection error or a timeout propagates.
    Both of those are retried.
    """
    sender = settings.twilio_sms_from or ""
    client = twilio_client(
        settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_api_url, timeout=TWILIO_TIMEOUT
    )
    origin = {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": sender}
    try:
        message = client.messages.create(to=to, body=body, **origin)
    except TwilioRestException as error:
        if 400 <= error.status < 500 and error.status not in TEMPORARY_4XX:
            raise SmsRefused(f"HTTP {error.status}, error {error.code}: {error.msg}"[:500]) from None
        raise SmsFailed(f"HTTP {error.status}, error {error.code}") from None
    return message.sid or ""


# -- the words ------------------------------------------------------------------------------------


def sms_body(ticket: Ticket, alert: str, settings: Settings) -> str:
    """The SMS: the ticket's number and customer, the transcript's first words if known, the console link."""
    text = prompts.catalogue(LANGUAGE).text
    number, customer = ticket.number or "", customer_words(ticket)
    if alert == ALERT:
        parts = [text("sms_oncall_alert", number=number, customer=customer)]
    else:
        response_due = due(ticket, load_sla(settings.sla_table))[0]
        parts = [text("sms_oncall_reminder", number=number, customer=customer, due=_short_time(response_due))]
    words = first_words(ticket.transcript)
    if words:
        parts.append(text("sms_oncall_words", words=words))
    parts.append(console_link(settings, number))
    return " ".join(parts)


def reminder_notice(ticket: Ticket, settings: Settings, to: str) -> Draft:
    """The dispatchers' email at half the response time of a critical ticket nobody has acted on."""
    text = prompts.catalogue(LANGUAGE).text
    number, customer = ticket.number or "", customer_words(ticket)
    response_due = due(ticket, load_sla(settings.sla_table))[0]
    facts = {
        "number": number,
        "customer": customer,
        "opened": written_when(ticket.created_at, LANGUAGE),
        "due": written_when(response_due, LANGUAGE),
    }
    lines = [text("email_oncall_reminder_body" if settings.oncall_sms_to else "email_oncall_reminder_no_sms", **facts)]
    if ticket.transcript:
        lines += ["", text("sms_oncall_words", words=ticket.transcript)]
    lines += ["", text("email_oncall_link", link=console_link(settings, number))]
    subject = text("email_oncall_reminder_subject", number=number, customer=customer)
    return Draft(mail.ONCALL_REMINDER, f"{mail.ONCALL_REMINDER}:{ticket.id}", to, subject, "\n".join(lines))


def customer_words(ticket: Ticket) -> str:
    """The customer as an alert names it: its name, a typed code's customer to confirm, or an unregistered caller."""
    text = prompts.catalogue(LANGUAGE).text
    if ticket.customer is None:
        return text("sms_unregistered_caller")
    if ticket.needs_match:
        return text("sms_claimed_customer", customer=ticket.customer.name)
    return ticket.customer.name


def first_words(transcript: str | None) -> str | None:
    """The transcript's first words (FIRST_WORDS, at most FIRST_CHARS), with an ellipsis when cut."""
    words = (transcript or "").split()
    if not words:
        return None
    kept = " ".join(words[:FIRST_WORDS])
    if len(kept) > FIRST_CHARS:
        kept = kept[:FIRST_CHARS].rsplit(" ", 1)[0] or kept[:FIRST_CHARS]
    return kept if kept == " ".join(words) else kept + "…"


def console_link(settings: Settings, number: str) -> str:
    """The ticket's page in the console: PUBLIC_BASE_URL and the page's path (the path alone without it)."""
    return (settings.public_base_url or "").rstrip("/") + CONSOLE_TICKET_PATH.format(number=number)


def _short_time(moment: datetime) -> str:
    """A moment as an SMS writes it, on the help desk's clock: "14:30", or "2/12 09:20" on another day."""
    local = moment.astimezone(HELP_DESK_ZONE)
    today = datetime.now(HELP_DESK_ZONE).date()
    return f"{local:%H:%M}" if local.date() == today else f"{local.day}/{local.month} {local:%H:%M}"
