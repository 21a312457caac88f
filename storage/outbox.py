"""The outbox: work for the worker, written in the same transaction as what it is about.

Its whole life is here, and nothing else touches `PendingWork`: add, reopen, claim the
due rows for the relay, take a lease, hold it for a write, renew, finish, fail, retry,
and count the work by state for the operators' metrics.

Work may wait for a due time (`due_at`: a reminder): until then the relay leaves it in
the database, and a job that runs it early (a stray RQ job) takes no lease.

A job owns its row through a lease: a random token and an expiry on the database's
clock (so the machines' clocks need not agree). Every write a job makes goes through
`hold()`, which locks the row and checks the token; a job that outlived its lease finds
the token changed and stops, having written nothing. `version` grows when new input
arrives for the work (a late recording), and `finish()` marks the work done only if the
version is still the one the job started from.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from storage.models import PendingWork
from storage.statements import Statement, run

FOLLOW_UP = "follow_up"  # a new ticket: fetch its recording, transcribe it, queue its emails
VOICE_MESSAGE = "voice_message"  # a message added by phone to a ticket: fetch, transcribe, notify
EMAIL = "email"  # one email (storage.emails)
ONCALL_SMS = "oncall_sms"  # a critical ticket: the SMS to the on-call technician, at once
ONCALL_REMINDER = "oncall_reminder"  # its reminder at half the response time, if nobody has acted (due_at)
MONTHLY_REPORTS = "monthly_reports"  # a month's customer reports, due on the next month's first
URGENT = frozenset({ONCALL_SMS, ONCALL_REMINDER})  # handed to RQ at the front of the queue

# The states of a row, as the metrics name them (`get_work_by_state`), in the order they are told apart.
DONE = "done"  # finished
FAILED = "failed"  # failed for good (MAX_STARTS, or a job's last retry): only `flask retry-failed` revives it
RUNNING = "running"  # a job holds its lease
SCHEDULED = "scheduled"  # its due time has not come (a reminder): the relay hands it over then
RETRYING = "retrying"  # a run failed; RQ's scheduler holds the retry (enqueued_at is when it is due)
QUEUED = "queued"  # handed to Redis by the relay, no job has started it yet
WAITING = "waiting"  # not yet handed to Redis: the relay will
STATES = (SCHEDULED, WAITING, QUEUED, RETRYING, RUNNING, FAILED, DONE)

# A job that took its lease this many times in a row without ending (killed each time, say) is failed.
MAX_STARTS = 5


class LeaseLost(Exception):
    """The job's lease expired and was taken by another job, or the work was finished elsewhere."""


@dataclass(frozen=True)
class Lease:
    """What a job holds while it works a row: the token that proves it, and what it started from."""

    work_id: int
    token: str
    version: int
    kind: str
    ticket_id: int | None
    message_id: int | None
    email_id: int | None
    starts: int
    failures: int  # runs that failed before this one


def database_now(session: Session) -> datetime:
    """Now by the database's clock, timezone-aware UTC: one clock for every machine's leases."""
    if session.get_bind().dialect.name == "sqlite":
        text = session.scalar(select(func.strftime("%Y-%m-%d %H:%M:%f", "now")))
        return datetime.fromisoformat(str(text)).replace(tzinfo=UTC)
    value = session.scalar(select(func.statement_timestamp()))
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def new_work(
    kind: str,
    key: str,
    *,
    ticket_id: int | None = None,
    message_id: int | None = None,
    email_id: int | None = None,
    due_at: datetime | None = None,
) -> dict[str, object]:
    """The row of new work: `key` is new (unique in the table); the relay enqueues it after the
    commit, or once `due_at` has come."""
    return {
        "key": key,
        "kind": kind,
        "ticket_id": ticket_id,
        "message_id": message_id,
        "email_id": email_id,
        "due_at": due_at,
        "version": 0,
        "runs": 0,
        "starts": 0,
    }


def add(session: Session, kind: str, key: str, **about: Any) -> PendingWork:
    """Add the work of something just created in the caller's transaction (`new_work` says what `about` holds)."""
    work = PendingWork(**new_work(kind, key, **about))
    session.add(work)
    return work


_pending: Table = PendingWork.__table__  # type: ignore[assignment]
_ADD = Statement(
    insert(_pending).values({name: bindparam(name, type_=_pending.c[name].type) for name in new_work("", "")}).inline()
)


def add_new(connection: Connection, works: list[dict[str, object]]) -> None:
    """Add new work (rows made by `new_work`) in the connection's transaction, in one Core statement."""
    run(connection, _ADD, works)


def reopen(session: Session, key: str) -> None:
    """New input for work that may be running or done (a late recording): run it (again).

    The version grows, so a job running now will not mark it done; its steps that are
    already done (emails sent) are not done twice.
    """
    session.execute(
        update(PendingWork)
        .where(PendingWork.key == key)
        .values(
            version=PendingWork.version + 1,
            done_at=None,
            failed_at=None,
            enqueued_at=None,
            failures=0,
            starts=0,
        )
    )


def claim_due(session: Session, requeue_after: timedelta, limit: int = 100) -> list[tuple[int, str, int]]:
    """For the relay: mark the due rows enqueued, and return (id, kind, runs) for each.

    Due: not done, not failed, its due time (if any) come, not leased by a running job, and not
    enqueued recently (a job lost in Redis is sent again after `requeue_after`). The caller commits, then talks
    to Redis, outside the transaction; `unclaim` puts back what Redis did not take.
    """
    now = database_now(session)
    due = select(PendingWork).where(
        PendingWork.done_at.is_(None),
        PendingWork.failed_at.is_(None),
        or_(PendingWork.due_at.is_(None), PendingWork.due_at <= now),
        or_(PendingWork.lease_until.is_(None), PendingWork.lease_until < now),
        or_(PendingWork.enqueued_at.is_(None), PendingWork.enqueued_at < now - requeue_after),
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = []
    for work in session.scalars(due.order_by(PendingWork.id).limit(limit)):
        work.runs += 1
        work.enqueued_at = now
        claimed.append((work.id, work.kind, work.runs))
    return claimed


def unclaim(session: Session, work_ids: list[int]) -> None:
    """Redis did not take these: leave them due for the relay's next round."""
    if work_ids:
        session.execute(
            update(PendingWork)
            .where(PendingWork.id.in_(work_ids))
            .values(enqueued_at=None, runs=PendingWork.runs - 1)
            .execution_options(synchronize_session=False)
        )


def take_lease(session: Session, work_id: int, seconds: int) -> Lease | None:
    """Take the row for a job (a new token, an expiry on the database's clock); None if done, leased or not due."""
    now = database_now(session)
    token = secrets.token_hex(16)
    taken = session.execute(
        update(PendingWork)
        .where(
            PendingWork.id == work_id,
            PendingWork.done_at.is_(None),
            PendingWork.failed_at.is_(None),
            or_(PendingWork.due_at.is_(None), PendingWork.due_at <= now),
            or_(PendingWork.lease_until.is_(None), PendingWork.lease_until < now),
        )
        .values(lease_token=token, lease_until=now + timedelta(seconds=seconds), starts=PendingWork.starts + 1)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    work = session.get(PendingWork, work_id, populate_existing=True)
    assert work is not None
    return Lease(
        work.id,
        token,
        work.version,
        work.kind,
        work.ticket_id,
        work.message_id,
        work.email_id,
        work.starts,
        work.failures,
    )


def _locked_row(session: Session, lease: Lease) -> PendingWork:
    """The row, locked for this transaction, if the lease is still ours; LeaseLost otherwise."""
    query = select(PendingWork).where(PendingWork.id == lease.work_id, PendingWork.lease_token == lease.token)
    work = session.scalars(query.with_for_update().execution_options(populate_existing=True)).one_or_none()
    if work is None or work.done_at is not None or work.failed_at is not None:
        raise LeaseLost(f"work {lease.work_id}")
    return work


@contextmanager
def hold(make_session: sessionmaker[Session], lease: Lease, seconds: int) -> Iterator[Session]:
    """A short transaction for a job's writes, committed only while the lease is ours (and renewed)."""
    with make_session() as session, session.begin():
        work = _locked_row(session, lease)
        work.lease_until = database_now(session) + timedelta(seconds=seconds)
        yield session


def renew(make_session: sessionmaker[Session], lease: Lease, seconds: int) -> None:
    """Push the lease's expiry on (from a heartbeat while a slow step runs); LeaseLost if it is gone."""
    with hold(make_session, lease, seconds):
        pass


def finish(make_session: sessionmaker[Session], lease: Lease) -> bool:
    """Mark the work done, if nothing new arrived since the job started; else free it to run again."""
    with make_session() as session, session.begin():
        work = _locked_row(session, lease)
        work.lease_token, work.lease_until, work.last_error = None, None, None
        work.starts = 0
        if work.version != lease.version:
            work.enqueued_at = None  # the relay sends it again at once, for what arrived meanwhile
            return False
        work.done_at = database_now(session)
        return True


def fail(
    make_session: sessionmaker[Session], lease: Lease, reason: str, *, final: bool, retry_in: timedelta | None = None
) -> bool:
    """Keep why the run failed and free the lease; `final` marks the work failed for good.

    While RQ's scheduler holds a retry (`retry_in`), the relay leaves the row alone.
    Returns False when the lease was no longer ours (nothing written).
    """
    with make_session() as session, session.begin():
        try:
            work = _locked_row(session, lease)
        except LeaseLost:
            return False
        now = database_now(session)
        work.last_error = reason[:500]
        work.failures += 1
        work.starts = 0  # this run ended and said so: it is not one of the runs that vanished
        work.lease_token, work.lease_until = None, None
        if final:
            work.failed_at = now
        elif retry_in is not None:
            work.enqueued_at = now + retry_in
        return True


def fail_now(session: Session, lease: Lease, reason: str) -> None:
    """Inside a held transaction: this work cannot succeed (it keeps being killed, say)."""
    work = _locked_row(session, lease)
    work.last_error = reason[:500]
    work.failed_at = database_now(session)
    work.lease_token, work.lease_until = None, None


def retry_failed(session: Session) -> list[PendingWork]:
    """Make the work that failed for good due again, with a fresh budget; returns those rows."""
    failed = list(session.scalars(select(PendingWork).where(PendingWork.failed_at.is_not(None))))
    for work in failed:
        work.failed_at = work.enqueued_at = work.lease_until = work.lease_token = None
        work.failures = work.starts = 0
    return failed


def get_work_key(session: Session, work_id: int) -> str | None:
    """The key of the work row `work_id` (what a job is about, when its lease does not say: a month)."""
    return session.scalar(select(PendingWork.key).where(PendingWork.id == work_id))


def get_work(session: Session, key: str) -> PendingWork | None:
    """The work row for `key` (for tests and the console's view of a ticket)."""
    return session.scalars(select(PendingWork).where(PendingWork.key == key)).one_or_none()


@dataclass(frozen=True)
class WorkCount:
    """How many rows of a kind are in a state, and the failed runs they hold (runs that raised, retried or not)."""

    kind: str
    state: str
    count: int
    failed_runs: int


def get_work_by_state(session: Session) -> list[WorkCount]:
    """The work counted by kind and state (one GROUP BY), by the database's clock."""
    now = database_now(session)
    state = case(
        (PendingWork.done_at.is_not(None), DONE),
        (PendingWork.failed_at.is_not(None), FAILED),
        (PendingWork.lease_until > now, RUNNING),
        (PendingWork.due_at > now, SCHEDULED),
        (PendingWork.enqueued_at > now, RETRYING),
        (PendingWork.enqueued_at.is_not(None), QUEUED),
        else_=WAITING,
    ).label("state")
    rows = session.execute(
        select(PendingWork.kind, state, func.count(), func.coalesce(func.sum(PendingWork.failures), 0)).group_by(
            PendingWork.kind, state
        )
    )
    return [WorkCount(kind, state_, count, failed_runs) for kind, state_, count, failed_runs in rows]
