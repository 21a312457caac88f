"""The relay: hands pending work to RQ, and turns the fallback spool into tickets.

Work is written to the database with its ticket (storage.models.PendingWork), so
nothing depends on Redis answering at that moment. The relay enqueues what is not
done yet and not leased by a running job; when Redis is down it leaves the rows as
they are and tries again on its next round. Several relays may run: jobs are idempotent.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from ivr import spool
from ivr.settings import Settings
from storage.models import PendingWork, utcnow

log = logging.getLogger(__name__)

# A job waits this long in the queue before the relay assumes it was lost and sends another.
REQUEUE_AFTER = timedelta(seconds=120)
JOB_TIMEOUT = 600


def retry_policy(settings: Settings) -> Retry:
    """Backoff for jobs that fail (SMTP down, ...): one retry per interval, run by RQ's scheduler."""
    return Retry(max=len(settings.retry_intervals), interval=list(settings.retry_intervals))


def job_queue(settings: Settings, connection: Redis | None = None) -> Queue:
    return Queue(settings.queue_name, connection=connection or Redis.from_url(settings.redis_url))


def relay_once(settings: Settings, make_session: sessionmaker[Session], queue: Queue) -> int:
    """Enqueue each pending work row that is due; returns how many were enqueued."""
    now = utcnow()
    enqueued = 0
    with make_session() as session, session.begin():
        due = select(PendingWork).where(
            PendingWork.done_at.is_(None),
            PendingWork.failed_at.is_(None),
            or_(PendingWork.lease_until.is_(None), PendingWork.lease_until < now),
            or_(PendingWork.enqueued_at.is_(None), PendingWork.enqueued_at < now - REQUEUE_AFTER),
        )
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        for work in session.scalars(due.order_by(PendingWork.id).limit(100)):
            work.runs += 1
            queue.enqueue_call(
                "ivr.jobs.follow_up.run_pending_work",
                args=(work.id,),
                job_id=f"{work.kind}-{work.id}-{work.runs}",
                timeout=JOB_TIMEOUT,
                retry=retry_policy(settings),
                failure_ttl=365 * 24 * 3600,
                description=f"{work.kind} on ticket {work.ticket_id}",
            )
            work.enqueued_at = utcnow()
            enqueued += 1
    return enqueued


def run_relay(settings: Settings, make_session: sessionmaker[Session], *, once: bool = False) -> None:
    """Relay every RELAY_INTERVAL seconds, forever (or once)."""
    queue = job_queue(settings)
    redis_was_down = False
    while True:
        try:
            spool.ingest(settings.spool_dir, make_session)
        except Exception:
            log.exception("spool ingestion failed; will try again")
        try:
            count = relay_once(settings, make_session, queue)
            if redis_was_down:
                log.info("Redis answers again; relaying pending work")
                redis_was_down = False
            if count:
                log.info("enqueued %d job(s)", count)
        except RedisError as error:
            if not redis_was_down:
                log.warning("Redis is not answering (%s); pending work stays in the database", type(error).__name__)
            redis_was_down = True
        except Exception:
            log.exception("relay round failed; will try again")
        if once:
            return
        time.sleep(settings.relay_interval)
