"""SMS as rows: each one written once (its key), claimed before it is sent, then marked sent or refused.

The same habits as the emails (storage.emails): the claim is an update that succeeds only
once while it lasts, so two jobs (or one that outlived its lease) never send an SMS twice;
a refusal (Twilio's 4xx) is kept with Twilio's answer and never tried again. Only the
claim's holder (its token) marks the outcome.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from storage import outbox
from storage.models import TextMessage, Ticket

# Far longer than one request to Twilio (30 s at most): a claim outlives any send.
CLAIM_SECONDS = 600


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


def claim_text_message(session: Session, message_id: int, token: str) -> bool:
    """Claim the SMS for sending: True once while the claim lasts; False if sent, refused or claimed."""
    now = outbox.database_now(session)
    claimed = session.execute(
        update(TextMessage)
        .where(
            TextMessage.id == message_id,
            TextMessage.sent_at.is_(None),
            TextMessage.refused_at.is_(None),
            or_(TextMessage.claimed_until.is_(None), TextMessage.claimed_until < now),
        )
        .values(claimed_by=token, claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1  # type: ignore[attr-defined]


def record_text_sent(session: Session, message_id: int, token: str, twilio_sid: str) -> bool:
    """Twilio took it: mark it sent, with its SID (only by the claim's holder)."""
    done = session.execute(
        update(TextMessage)
        .where(TextMessage.id == message_id, TextMessage.claimed_by == token)
        .values(sent_at=outbox.database_now(session), twilio_sid=twilio_sid[:64], claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return done.rowcount == 1  # type: ignore[attr-defined]


def record_text_refused(session: Session, message_id: int, token: str, answer: str) -> bool:
    """Twilio refused it for good (4xx): keep its answer; it is not tried again."""
    done = session.execute(
        update(TextMessage)
        .where(TextMessage.id == message_id, TextMessage.claimed_by == token)
        .values(refused_at=outbox.database_now(session), refusal=answer[:500], claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return done.rowcount == 1  # type: ignore[attr-defined]


def release_text_claim(session: Session, message_id: int, token: str) -> None:
    """A temporary failure: free the claim so the retry can send it."""
    session.execute(
        update(TextMessage)
        .where(TextMessage.id == message_id, TextMessage.claimed_by == token, TextMessage.sent_at.is_(None))
        .values(claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def get_text_messages_of_ticket(session: Session, ticket_id: int) -> list[TextMessage]:
    return list(session.scalars(select(TextMessage).where(TextMessage.ticket_id == ticket_id).order_by(TextMessage.id)))
