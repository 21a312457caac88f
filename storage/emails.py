"""Emails as rows: each one rendered when queued, for one recipient, sent by its own outbox work.

One email per recipient, so a refusal of one address blocks no other; an email that
must show who else got it (an estimate or a reply to the contact, the referents in Cc)
is one message with its `cc`. An email is sent once (storage.sending): claimed before it
is sent, so two jobs (or one that outlived its lease) never send it twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from storage import outbox
from storage.models import Email, Ticket

SENT, REFUSED, UNSENT = "sent", "refused", "unsent"  # an email's states, as the metrics name them


def message_id_for(key: str, mail_from: str) -> str:
    """A Message-ID made from the email's key: a resend is recognisably the same message."""
    local = "".join(c if c.isalnum() or c in "-." else "-" for c in key)
    domain = mail_from.rpartition("@")[2] or "localhost"
    return f"<{local}@{domain}>"


def queue_email(
    session: Session,
    *,
    key: str,
    kind: str,
    to: str,
    subject: str,
    body: str,
    message_id: str = "",
    ticket: Ticket | None = None,
    cc: Sequence[str] = (),
    html: str | None = None,
) -> Email:
    """Queue an email (once per `key`) and the work that sends it, in the caller's transaction.

    `html`: an HTML alternative of `body`, sent with it as multipart/alternative.
    Without `message_id` the worker makes it from the key and MAIL_FROM when it sends
    (`message_id_for`): the help desk's rules queue emails without knowing the settings.
    """
    existing = session.scalars(select(Email).where(Email.key == key)).one_or_none()
    if existing is not None:
        return existing
    email = Email(
        key=key,
        kind=kind,
        ticket_id=ticket.id if ticket is not None else None,
        to_address=to,
        cc=list(cc),
        subject=subject,
        body=body,
        html=html,
        message_id=message_id,
    )
    session.add(email)
    session.flush()
    outbox.add(session, outbox.EMAIL, f"email:{email.id}", ticket_id=email.ticket_id, email_id=email.id)
    return email


def get_email(session: Session, key: str) -> Email | None:
    """The email queued under `key`, if any."""
    return session.scalars(select(Email).where(Email.key == key)).one_or_none()


def get_emails_of_ticket(session: Session, ticket_id: int) -> list[Email]:
    return list(session.scalars(select(Email).where(Email.ticket_id == ticket_id).order_by(Email.id)))


def get_email_counts(session: Session) -> list[tuple[str, str, int]]:
    """(kind, state, count) of every email: sent, refused for good by the SMTP server, or not sent yet."""
    sent, refused = Email.sent_at.is_not(None), Email.refused_at.is_not(None)
    state = case((sent, SENT), (refused, REFUSED), else_=UNSENT).label("state")
    rows = session.execute(select(Email.kind, state, func.count()).group_by(Email.kind, state))
    return [(kind, state_, count) for kind, state_, count in rows]
