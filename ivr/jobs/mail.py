"""The emails' words and their delivery.

Drafts are made when an email is queued (storage.emails keeps each one as a row, one
recipient each): the caller's confirmation and the referents' copies in the call's
language, the dispatchers' notices in Italian, the help desk's language. `send` delivers
one row over SMTP and tells a permanent refusal (5xx for this message) from a failure
worth retrying.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate

import prompts
from helpdesk import thread
from helpdesk.notices import Draft  # one shape for every email drafted, here and by the actions
from ivr.settings import Settings
from storage.emails import message_id_for
from storage.models import Email, Ticket, TicketEvent, VoiceMessage
from storage.phones import masked

CONFIRMATION = "confirmation"
REFERENT_COPY = "referent_copy"
DISPATCH = "dispatch"
CONFIRMATION_REFUSED = "confirmation_refused"
VOICE_MESSAGE = "voice_message"
PIN_LOCKED = "pin_locked"
SPOOL_DEAD_LETTER = "spool_dead_letter"
ONCALL_REMINDER = "oncall_reminder"  # a critical ticket unanswered at half its response time (ivr.jobs.oncall)


class Refused(Exception):
    """The SMTP server refused this message for good (5xx); `answer` is what it said."""

    def __init__(self, answer: str):
        super().__init__(answer)
        self.answer = answer


def ticket_emails(ticket: Ticket, settings: Settings) -> list[Draft]:
    """A new ticket's emails: the confirmation and the referents' copies (a recognised caller only),
    and the dispatchers' notice."""
    drafts = []
    if not ticket.needs_match and ticket.contact is not None and ticket.customer is not None:
        body = _confirmation_body(ticket)
        text = prompts.catalogue(ticket.language).text
        subject = text("email_subject", number=ticket.number or "")
        drafts.append(Draft(CONFIRMATION, f"{CONFIRMATION}:{ticket.id}", ticket.contact.email, subject, body))
        copy_note = text("email_referent_copy", company=ticket.customer.name, name=ticket.contact.name)
        for referent in ticket.customer.contacts:
            if referent.referent and referent.id != ticket.contact.id:
                key = f"{REFERENT_COPY}:{ticket.id}:{referent.id}"
                drafts.append(Draft(REFERENT_COPY, key, referent.email, subject, f"{copy_note}\n\n{body}"))
    if settings.dispatch_email:
        drafts.append(_dispatch_notice(ticket, settings.dispatch_email))
    return drafts


def _confirmation_body(ticket: Ticket) -> str:
    assert ticket.contact is not None and ticket.customer is not None
    text = prompts.catalogue(ticket.language).text
    number = ticket.number or ""
    urgency = text(f"urgency_{ticket.urgency}")
    lines = [
        text("email_greeting", name=ticket.contact.name),
        "",
        text("email_opened", number=number, company=ticket.customer.name, urgency=urgency),
        "",
    ]
    if ticket.recording_sid is None:
        lines.append(text("email_no_audio"))
    elif ticket.transcript:
        lines += [text("email_understood"), "", f"  «{ticket.transcript}»"]
    else:
        lines.append(text("email_no_transcript"))
    lines += ["", text("email_next_steps", number=number, sla=ticket.customer.sla), "", text("email_signature")]
    return "\n".join(lines)


def _dispatch_notice(ticket: Ticket, to: str) -> Draft:
    kind = "segreteria" if ticket.voicemail else "telefono"
    if ticket.customer is None:
        who = "chiamante non registrato, da associare"
    elif ticket.needs_match:
        who = f"{ticket.customer.name}? (codice digitato, da confermare)"
    else:
        who = ticket.customer.name
    subject = f"[{ticket.urgency.upper()}] Nuovo ticket {ticket.number} ({kind}) - {who}"
    lines = [
        f"Ticket: {ticket.number}",
        f"Urgenza provvisoria: {ticket.urgency}",
        f"Canale: {ticket.channel}{' (messaggio in segreteria)' if ticket.voicemail else ''}",
        f"Cliente: {who}" + (f" (codice {ticket.customer.code}, SLA {ticket.customer.sla})" if ticket.customer else ""),
        f"Contatto: {ticket.contact.name} <{ticket.contact.email}>" if ticket.contact else "Contatto: -",
    ]
    if ticket.suggested_contact is not None:
        suggested = ticket.suggested_contact
        lines.append(f"Possibile contatto (da confermare): {suggested.name}, {suggested.customer.name}")
    lines += [
        f"Chiamante: {ticket.caller or 'numero nascosto'}",
        f"Numero di richiamata: {ticket.callback_number or '-'}",
        f"Lingua: {ticket.language}",
        "",
        "Trascrizione:" if ticket.transcript else "Trascrizione: nessuna",
        ticket.transcript or "",
        "",
        "Cronologia:",
        *_thread_lines(ticket.events),
    ]
    return Draft(DISPATCH, f"{DISPATCH}:{ticket.id}", to, subject, "\n".join(lines))


def _thread_lines(events: Iterable[TicketEvent]) -> list[str]:
    return [f"- {e.at:%Y-%m-%d %H:%M} {e.kind}: {thread.render(e, 'it')}" for e in events]


def confirmation_refused_notice(ticket: Ticket, refused: Email, to: str) -> Draft:
    """The dispatchers learn that the caller's confirmation bounced: someone must call back."""
    subject = f"[{ticket.urgency.upper()}] Conferma non recapitata: ticket {ticket.number}"
    contact = ticket.contact
    lines = [
        f"La conferma del ticket {ticket.number} a {refused.to_address} è stata rifiutata dal server di posta:",
        f"  {refused.refusal}",
        "",
        "Il cliente non sa che la richiesta è stata aperta: richiamarlo.",
        f"Contatto: {contact.name} <{contact.email}>" if contact else "Contatto: -",
        f"Telefono: {ticket.caller or ticket.callback_number or '-'}",
        f"Urgenza: {ticket.urgency}",
    ]
    return Draft(CONFIRMATION_REFUSED, f"{CONFIRMATION_REFUSED}:{ticket.id}", to, subject, "\n".join(lines))


def voice_message_notice(message: VoiceMessage, ticket: Ticket, settings: Settings) -> Draft | None:
    """A caller's spoken addition, to the assigned technician, else the dispatchers (in Italian)."""
    to = ticket.technician.email if ticket.technician is not None else settings.dispatch_email
    if not to:
        return None
    who = ticket.customer.name if ticket.customer else "chiamante non registrato"
    lines = [
        f"Il chiamante ha aggiunto un messaggio vocale al ticket {ticket.number} ({who}).",
        "",
        "Trascrizione:" if message.transcript else "Trascrizione: non disponibile, ascoltare la registrazione.",
        message.transcript or "",
        "",
        f"Urgenza: {ticket.urgency}; stato: {ticket.status}.",
    ]
    subject = f"Messaggio vocale sul ticket {ticket.number}"
    return Draft(VOICE_MESSAGE, f"{VOICE_MESSAGE}:{message.id}", to, subject, "\n".join(lines))


def spool_dead_letter_notice(name: str, kind: str, form: dict[str, str], reason: str, to: str) -> Draft:
    """A message the fallback kept that could never become a ticket: the dispatchers recover it by hand."""
    lines = [
        "Un messaggio raccolto dalla risposta di emergenza non è diventato un ticket dopo vari tentativi.",
        f"È conservato nella cartella dello spool, sotto dead/{name}.",
        "",
        f"Tipo: {kind}",
        f"Chiamata: {form.get('CallSid', '-')[:64]}",
        f"Chiamante: {masked(form.get('From'))}",
        f"Registrazione: {form.get('RecordingUrl', '-')[:300]}",
        f"Errore: {reason}",
    ]
    subject = "Messaggio di emergenza non acquisito: da recuperare a mano"
    return Draft(SPOOL_DEAD_LETTER, f"{SPOOL_DEAD_LETTER}:{name}", to, subject, "\n".join(lines))


def compose(email: Email, settings: Settings, ticket_number: str | None) -> EmailMessage:
    """The message to deliver for a queued email."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = email.to_address
    if email.cc:
        message["Cc"] = ", ".join(email.cc)  # send_message delivers to them too
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    # Deterministic, so a resend after a crash is recognisably the same message; the help desk's
    # rules queue emails without one (they know no settings): it is made here, from the key.
    message["Message-ID"] = email.message_id or message_id_for(email.key, settings.mail_from)
    if ticket_number:
        message["X-Ticket-Number"] = ticket_number
    message.set_content(email.body)
    if email.html:  # multipart/alternative: the text first, the HTML that mail clients prefer last
        message.add_alternative(email.html, subtype="html")
    return message


def send(message: EmailMessage, settings: Settings) -> None:
    """Deliver over SMTP, with TLS and login when configured.

    Raises Refused when the server refuses this message for good (a 5xx to its recipient
    or its data); anything else (connection, 4xx, our own login or sender refused)
    propagates, to be retried.
    """
    if settings.smtp_tls == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=30, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30)
    with client:
        if settings.smtp_tls == "starttls":
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_user and settings.smtp_password:
            client.login(settings.smtp_user, settings.smtp_password)
        try:
            client.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            answers = [(code, _text(reply)) for code, reply in error.recipients.values()]
            if answers and all(code >= 500 for code, _ in answers):
                raise Refused("; ".join(f"{code} {reply}" for code, reply in answers)) from None
            raise
        except smtplib.SMTPDataError as error:
            if error.smtp_code >= 500:
                raise Refused(f"{error.smtp_code} {_text(error.smtp_error)}") from None
            raise


def _text(reply: bytes | str) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply)[:400]
