"""The emails of a person's actions on a ticket: the estimated restore time, and a reply.

Each goes to the ticket's contact with the customer's other referents in Cc, in the
ticket's language (the caller's), with the ticket number in the subject; times are on
the help desk's clock, Europe/Rome. They are queued as rows (storage.emails) in the
action's transaction, and the worker sends them. A ticket whose caller is not matched
to a contact has nobody to write to: no draft.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

import prompts
from helpdesk.thread import HELP_DESK_ZONE
from storage.emails import queue_email
from storage.models import Contact, Email, Ticket

RESTORE_ESTIMATE = "restore_estimate"
REPLY = "reply"

# The words of these emails, by language (the greeting, the signature and the months are the line's, in prompts/).
WORDS: dict[str, dict[str, str]] = {
    "it": {
        "estimate_subject": "Richiesta di assistenza {number}: ripristino previsto",
        "estimate_body": (
            "per la richiesta di assistenza numero {number} prevediamo di ripristinare il servizio "
            "{when} (ora italiana)."
        ),
        "estimate_replaces": "Questa stima sostituisce la precedente: {previous}.",
        "reply_subject": "Richiesta di assistenza {number}: risposta dell'assistenza tecnica",
        "reply_intro": "in merito alla richiesta di assistenza numero {number}:",
        "quote_number": "Per ogni comunicazione indichi il numero {number}.",
        "when": "{weekday} {day} {month} {year} alle {time}",
        "weekdays": "lunedì, martedì, mercoledì, giovedì, venerdì, sabato, domenica",
    },
    "en": {
        "estimate_subject": "Support request {number}: estimated restore time",
        "estimate_body": "for support request number {number} we expect to restore service by {when} (Italian time).",
        "estimate_replaces": "This estimate replaces the previous one: {previous}.",
        "reply_subject": "Support request {number}: a reply from technical support",
        "reply_intro": "about support request number {number}:",
        "quote_number": "Please quote number {number} in every contact.",
        "when": "{weekday} {day} {month} {year} at {time}",
        "weekdays": "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday",
    },
}


@dataclass(frozen=True)
class Draft:
    """An email to queue: what it is (`key`, once), to whom, who is copied, and its words."""

    kind: str
    key: str
    to: str
    subject: str
    body: str
    cc: tuple[str, ...] = ()


def estimate_notice(ticket: Ticket, event_id: int, when: datetime, previous: datetime | None) -> Draft | None:
    """The contact learns the estimated restore time (a new email for each estimate: keyed by its thread entry)."""
    language = _language(ticket)
    words = WORDS[language]
    paragraph = [words["estimate_body"].format(number=ticket.number or "", when=written_when(when, language))]
    if previous is not None:
        paragraph.append(words["estimate_replaces"].format(previous=written_when(previous, language)))
    return _letter(ticket, RESTORE_ESTIMATE, event_id, "estimate_subject", paragraph)


def reply_notice(ticket: Ticket, event_id: int, reply: str) -> Draft | None:
    """A person's reply, as written, to the contact (keyed by its thread entry)."""
    intro = WORDS[_language(ticket)]["reply_intro"].format(number=ticket.number or "")
    return _letter(ticket, REPLY, event_id, "reply_subject", [intro, "", reply])


def _letter(ticket: Ticket, kind: str, event_id: int, subject_key: str, paragraph: list[str]) -> Draft | None:
    """An email to the ticket's contact, referents in Cc, in the ticket's language: greeting, `paragraph`,
    the number to quote, the signature. None without a confirmed contact."""
    found = recipients(ticket)
    if found is None:
        return None
    contact, cc = found
    language = _language(ticket)
    words, text = WORDS[language], prompts.catalogue(language).text
    number = ticket.number or ""
    lines = [text("email_greeting", name=contact.name), "", *paragraph, ""]
    lines += [words["quote_number"].format(number=number), "", text("email_signature")]
    subject = words[subject_key].format(number=number)
    return Draft(kind, f"{kind}:{ticket.id}:{event_id}", contact.email, subject, "\n".join(lines), cc)


def queue(session: Session, draft: Draft, ticket: Ticket | None = None) -> Email:
    """Queue the draft (once per its key) in the caller's transaction; the worker sends it.

    Its Message-ID is made from the key when it is sent, so a resend is the same message.
    """
    return queue_email(
        session,
        key=draft.key,
        kind=draft.kind,
        to=draft.to,
        cc=draft.cc,
        subject=draft.subject,
        body=draft.body,
        ticket=ticket,
    )


def written_when(moment: datetime, language: str) -> str:
    """A moment as an email writes it, on the help desk's clock: "martedì 1 dicembre 2026 alle 14:30"."""
    local = moment.astimezone(HELP_DESK_ZONE)
    words, text = WORDS[_known(language)], prompts.catalogue(language).text
    month = [name.strip() for name in text("months").split(",")][local.month - 1]
    weekday = [name.strip() for name in words["weekdays"].split(",")][local.weekday()]
    return words["when"].format(
        weekday=weekday, day=local.day, month=month, year=local.year, time=f"{local.hour}:{local.minute:02d}"
    )


def recipients(ticket: Ticket) -> tuple[Contact, tuple[str, ...]] | None:
    """The contact, and the customer's other referents to copy; None while the caller is not matched."""
    contact, customer = ticket.contact, ticket.customer
    if ticket.needs_match or contact is None or customer is None:
        return None
    copied = tuple(person.email for person in customer.contacts if person.referent and person.id != contact.id)
    return contact, copied


def _language(ticket: Ticket) -> str:
    return _known(ticket.language)


def _known(language: str) -> str:
    return language if language in WORDS else prompts.DEFAULT_LANGUAGE
