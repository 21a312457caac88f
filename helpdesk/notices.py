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


@dataclass(frozen=True)
class Draft:
    """An email to queue: what it is (`key`, once), to whom, who is copied, and its words."""

    kind: str
    key: str
    to: str
    subject: str
    body: str
    cc: tuple[str, ...] = ()
    html: str | None = None  # an HTML alternative of `body` (the monthly report)


def estimate_notice(ticket: Ticket, event_id: int, when: datetime, previous: datetime | None) -> Draft | None:
    """The contact learns the estimated restore time (a new email for each estimate: keyed by its thread entry)."""
    language = _language(ticket)
    text = prompts.catalogue(language).text
    paragraph = [text("email_estimate_body", number=ticket.number or "", when=written_when(when, language))]
    if previous is not None:
        paragraph.append(text("email_estimate_replaces", previous=written_when(previous, language)))
    return _letter(ticket, RESTORE_ESTIMATE, event_id, "email_estimate_subject", paragraph)


def reply_notice(ticket: Ticket, event_id: int, reply: str) -> Draft | None:
    """A person's reply, as written, to the contact (keyed by its thread entry)."""
    intro = prompts.catalogue(_language(ticket)).text("email_reply_intro", number=ticket.number or "")
    return _letter(ticket, REPLY, event_id, "email_reply_subject", [intro, "", reply])


def _letter(ticket: Ticket, kind: str, event_id: int, subject_key: str, paragraph: list[str]) -> Draft | None:
    """An email to the ticket's contact, referents in Cc, in the ticket's language: greeting, `paragraph`,
    the number to quote, the signature. None without a confirmed contact."""
    found = recipients(ticket)
    if found is None:
        return None
    contact, cc = found
    text = prompts.catalogue(_language(ticket)).text
    number = ticket.number or ""
    lines = [text("email_greeting", name=contact.name), "", *paragraph, ""]
    lines += [text("email_quote_number", number=number), "", text("email_signature")]
    subject = text(subject_key, number=number)
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
        html=draft.html,
        ticket=ticket,
    )


def written_when(moment: datetime, language: str) -> str:
    """A moment as an email writes it, on the help desk's clock: "martedì 1 dicembre 2026 alle 14:30"."""
    local = moment.astimezone(HELP_DESK_ZONE)
    text = prompts.catalogue(language).text
    month = [name.strip() for name in text("months").split(",")][local.month - 1]
    weekday = [name.strip() for name in text("weekdays").split(",")][local.weekday()]
    return text(
        "email_when",
        weekday=weekday,
        day=local.day,
        month=month,
        year=local.year,
        time=f"{local.hour}:{local.minute:02d}",
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
    return language if language in prompts.LANGUAGES else prompts.DEFAULT_LANGUAGE
