"""The relay: hands pending work to RQ, and turns the fallback spool into tickets.

Work is written to the database with its ticket (storage.outbox), so nothing depends
on Redis answering at that moment. The relay enqueues what is not
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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from helpdesk.reports import schedule_monthly_reports
from helpdesk.sla import load as load_sla
from ivr.settings import Settings
from ivr.voice import spool
from storage import outbox
from storage.models import utcnow

log = logging.getLogger(__name__)

# A job waits this long in the queue before the relay assumes it was lost and sends another.
REQUEUE_AFTER = timedelta(seconds=120)
JOB_TIMEOUT = 600
# Redis answers in milliseconds; one that accepts connections but never answers must not hold the relay.
REDIS_TIMEOUT = 5.0


def retry_policy(settings: Settings) -> Retry:
    """Backoff for jobs that fail (SMTP down, ...): one retry per interval, run by RQ's scheduler."""
    return Retry(max=len(settings.retry_intervals), interval=list(settings.retry_intervals))


def job_queue(settings: Settings, connection: Redis | None = None) -> Queue:
    redis = connection or Redis.from_url(
        settings.redis_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
    )
    return Queue(settings.queue_name, connection=redis)


def relay_once(settings: Settings, make_session: sessionmaker[Session], queue: Queue) -> int:
    """Enqueue each outbox row that is due; returns how many were enqueued.

    The rows are claimed and committed first; Redis is asked with no transaction open, and
    what it did not take is put back for the next round (the RedisError is raised again).
    """
    with make_session() as session, session.begin():
        claimed = outbox.claim_due(session, REQUEUE_AFTER)
    enqueued = 0
    try:
        for work_id, kind, runs in claimed:
            queue.enqueue_call(
                "ivr.jobs.follow_up.run_pending_work",
                args=(work_id,),
                job_id=f"{kind}-{work_id}-{runs}",
                timeout=JOB_TIMEOUT,
                retry=retry_policy(settings),
                failure_ttl=365 * 24 * 3600,
                description=f"{kind} {work_id}",
                # An on-call alert jumps the queue: it must not wait behind a transcription.
                at_front=kind in outbox.URGENT,
            )
            enqueued += 1
    except RedisError:
        with make_session() as session, session.begin():
            outbox.unclaim(session, [work_id for work_id, _, _ in claimed[enqueued:]])
        raise
    return enqueued


def schedule_reports(settings: Settings, make_session: sessionmaker[Session]) -> bool:
    """With MONTHLY_REPORTS on, make sure this month's reports are in the outbox (one row, keyed by the month).

    True if this relay wrote it; another relay that wrote it first makes the commit fail on the
    unique key, and that is as good.
    """
    if settings.monthly_reports != "on":
        return False
    try:
        with make_session() as session, session.begin():
            return schedule_monthly_reports(session, utcnow())
    except IntegrityError:
        return False


def run_relay(settings: Settings, make_session: sessionmaker[Session], *, once: bool = False) -> None:
    """Relay every RELAY_INTERVAL seconds, forever (or once)."""
    queue = job_queue(settings)
    report_dead = spool.dead_letter_reporter(settings, make_session)
    redis_was_down = False
    while True:
        try:
            spool.ingest(settings.spool_dir, make_session, report_dead=report_dead, table=load_sla(settings.sla_table))
        except Exception:
            log.exception("spool ingestion failed; will try again")
        try:
            if schedule_reports(settings, make_session):
                log.info("this month's customer reports are scheduled for the first of the next")
        except Exception:
            log.exception("could not schedule the monthly reports; will try again")
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
