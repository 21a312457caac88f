"""Messages sent once (emails, SMS): claimed before they are sent, then marked sent or refused.

The claim is an update that succeeds only once while it lasts, so two jobs (or one that
outlived its lease) never send a message twice. Only the claim's holder (its token) marks the
outcome: sent, or refused for good with the server's answer, never tried again. A temporary
failure frees the claim for the retry. The rows are storage.models.SentOnce.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from storage import outbox
from storage.models import SentOnce

# Far longer than one SMTP conversation or one request to Twilio (30 s each at most): a claim outlives any send.
CLAIM_SECONDS = 600


def claim(session: Session, model: type[SentOnce], message_id: int, token: str) -> bool:
    """Claim the message for sending: True once while the claim lasts; False if sent, refused or claimed."""
    now = outbox.database_now(session)
    claimed = session.execute(
        update(model)
        .where(
            model.id == message_id,
            model.sent_at.is_(None),
            model.refused_at.is_(None),
            or_(model.claimed_until.is_(None), model.claimed_until < now),
        )
        .values(claimed_by=token, claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1  # type: ignore[attr-defined]


def record_sent(session: Session, model: type[SentOnce], message_id: int, token: str, **values: Any) -> bool:
    """The server took it: mark it sent, with `values` (Twilio's SID, say), only by the claim's holder."""
    return _by_holder(session, model, message_id, token, sent_at=outbox.database_now(session), **values)


def record_refused(session: Session, model: type[SentOnce], message_id: int, token: str, answer: str) -> bool:
    """The server refused it for good: keep its answer; it is not tried again."""
    return _by_holder(session, model, message_id, token, refused_at=outbox.database_now(session), refusal=answer[:500])


def release(session: Session, model: type[SentOnce], message_id: int, token: str) -> None:
    """A temporary failure: free the claim so the retry can send it."""
    session.execute(
        update(model)
        .where(model.id == message_id, model.claimed_by == token, model.sent_at.is_(None))
        .values(claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def _by_holder(session: Session, model: type[SentOnce], message_id: int, token: str, **values: Any) -> bool:
    done = session.execute(
        update(model)
        .where(model.id == message_id, model.claimed_by == token)
        .values(claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return done.rowcount == 1  # type: ignore[attr-defined]
