"""The emails of a new ticket: the caller's confirmation and the dispatchers' notice."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

import prompts
from ivr.settings import Settings
from storage.models import Ticket, VoiceMessage


def confirmation(ticket: Ticket, settings: Settings) -> EmailMessage | None:
    """The caller's confirmation, in the call's language; None for an unregistered caller."""
    if ticket.contact is None or ticket.customer is None:
        return None
    text = prompts.catalogue(ticket.language).text
    number = ticket.number or ""
    lines = [
        text("email_greeting", name=ticket.contact.name),
        "",
        text("email_opened", number=number, company=ticket.customer.name, urgency=text(f"urgency_{ticket.urgency}")),
        "",
    ]
    if ticket.recording_sid is None:
        lines.append(text("email_no_audio"))
    elif ticket.transcript:
        lines += [text("email_understood"), "", f"  «{ticket.transcript}»"]
    else:
        lines.append(text("email_no_transcript"))
    lines += ["", text("email_next_steps", number=number, sla=ticket.customer.sla), "", text("email_signature")]

    referents = [c.email for c in ticket.customer.contacts if c.referent and c.id != ticket.contact.id]
    message = _message(settings, ticket, "confirmation", text("email_subject", number=number), "\n".join(lines))
    message["To"] = ticket.contact.email
    if referents:
        message["Cc"] = ", ".join(referents)
    return message


def dispatch_notice(ticket: Ticket, settings: Settings) -> EmailMessage | None:
    """The dispatchers' notice of a new ticket (in Italian, the help desk's language); None without DISPATCH_EMAIL."""
    if not settings.dispatch_email:
        return None
    kind = "segreteria" if ticket.voicemail else "telefono"
    who = ticket.customer.name if ticket.customer else "chiamante non registrato, da associare"
    subject = f"[{ticket.urgency.upper()}] Nuovo ticket {ticket.number} ({kind}) - {who}"
    lines = [
        f"Ticket: {ticket.number}",
        f"Urgenza provvisoria: {ticket.urgency}",
        f"Canale: {ticket.channel}{' (messaggio in segreteria)' if ticket.voicemail else ''}",
        f"Cliente: {who}" + (f" (codice {ticket.customer.code}, SLA {ticket.customer.sla})" if ticket.customer else ""),
        f"Contatto: {ticket.contact.name} <{ticket.contact.email}>" if ticket.contact else "Contatto: -",
        f"Chiamante: {ticket.caller or 'numero nascosto'}",
        f"Numero di richiamata: {ticket.callback_number or '-'}",
        f"Lingua: {ticket.language}",
        "",
        "Trascrizione:" if ticket.transcript else "Trascrizione: nessuna",
        ticket.transcript or "",
        "",
        "Cronologia:",
        *(f"- {e.at:%Y-%m-%d %H:%M} {e.kind}: {e.text}" for e in ticket.events),
    ]
    message = _message(settings, ticket, "dispatch", subject, "\n".join(lines))
    message["To"] = settings.dispatch_email
    return message


def voice_message_notice(message: VoiceMessage, ticket: Ticket, settings: Settings) -> EmailMessage | None:
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
    email = _message(
        settings,
        ticket,
        f"voice-message-{message.id}",
        f"Messaggio vocale sul ticket {ticket.number}",
        "\n".join(lines),
    )
    email["To"] = to
    return email


def _message(settings: Settings, ticket: Ticket, kind: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    # Deterministic, so a resend after a crash is recognisably the same message.
    domain = settings.mail_from.rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<ticket-{ticket.number}-{kind}@{domain}>"
    message["X-Ticket-Number"] = ticket.number or ""
    message.set_content(body)
    return message


def send(message: EmailMessage, settings: Settings) -> None:
    """Deliver over SMTP, with TLS and login when configured."""
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
        client.send_message(message)
