"""SMS as rows: each one written once (its key), claimed before it is sent, then marked sent or refused.

Sent once, as the emails are (storage.sending): two jobs (or one that outlived its lease)
never send an SMS twice; a refusal (Twilio's 4xx) is kept with Twilio's answer and never
tried again.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import TextMessage, Ticket


def get_text_message(session: Session, key: str) -> TextMessage | None:
    return session.scalars(select(TextMessage).where(TextMessage.key == key)).one_or_none()


def write_text_message(
    session: Session, *, key: str, kind: str, ticket: Ticket | None, to: str, body: str
) -> TextMessage:
    """The SMS `key`, written now with its words if it is new (a second run finds the first's words)."""
    existing = get_text_message(session, key)
    if existing is not None:
        return existing
    message = TextMessage(
        key=key, kind=kind, ticket_id=ticket.id if ticket is not None else None, to_number=to, body=body
    )
    session.add(message)
    session.flush()
    return message


def get_text_messages_of_ticket(session: Session, ticket_id: int) -> list[TextMessage]:
    return list(session.scalars(select(TextMessage).where(TextMessage.ticket_id == ticket_id).order_by(TextMessage.id)))
