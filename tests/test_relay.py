"""The relay hands pending work to RQ when Redis answers, and only work that is due."""

from __future__ import annotations

from datetime import timedelta

import pytest
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import select

from ivr.worker.relay import job_queue, relay_once
from storage.models import PendingWork, Ticket, utcnow
from tests.conftest import GIULIA

pytestmark = pytest.mark.usefixtures("directory")


@pytest.fixture
def queue(settings):
    queue = job_queue(settings)
    yield queue
    queue.delete(delete_jobs=True)


def open_ticket(caller) -> None:
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")


def work_rows(app) -> list[PendingWork]:
    with app.config["SESSIONMAKER"]() as session:
        return list(session.scalars(select(PendingWork)))


def change_work(app, **values) -> None:
    with app.config["SESSIONMAKER"]() as session, session.begin():
        for work in session.scalars(select(PendingWork)):
            for name, value in values.items():
                setattr(work, name, value)


def test_a_new_ticket_is_enqueued_once(app, settings, caller, queue):
    open_ticket(caller)
    assert relay_once(settings, app.config["SESSIONMAKER"], queue) == 1
    assert relay_once(settings, app.config["SESSIONMAKER"], queue) == 0  # enqueued moments ago
    [work] = work_rows(app)
    assert work.enqueued_at is not None and work.runs == 1
    assert queue.job_ids == [f"follow_up-{work.id}-1"]
    assert queue.fetch_job(queue.job_ids[0]).retries_left == len(settings.retry_intervals)


def test_work_that_is_running_or_done_is_left_alone(app, settings, caller, queue):
    open_ticket(caller)
    change_work(app, lease_until=utcnow() + timedelta(minutes=1))
    assert relay_once(settings, app.config["SESSIONMAKER"], queue) == 0
    change_work(app, lease_until=None, done_at=utcnow())
    assert relay_once(settings, app.config["SESSIONMAKER"], queue) == 0


def test_work_whose_job_was_lost_is_enqueued_again(app, settings, caller, queue):
    open_ticket(caller)
    relay_once(settings, app.config["SESSIONMAKER"], queue)
    change_work(app, enqueued_at=utcnow() - timedelta(minutes=5), lease_until=utcnow() - timedelta(minutes=3))
    assert relay_once(settings, app.config["SESSIONMAKER"], queue) == 1
    [work] = work_rows(app)
    assert work.runs == 2 and len(queue.job_ids) == 2


def test_with_redis_down_the_work_stays_pending_in_the_database(app, settings, caller):
    open_ticket(caller)
    unreachable = Queue("ivr", connection=Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5))
    with pytest.raises(RedisError):
        relay_once(settings, app.config["SESSIONMAKER"], unreachable)
    [work] = work_rows(app)
    assert work.enqueued_at is None and work.runs == 0


def test_failed_work_is_sent_for_another_round_by_the_cli(app, settings, caller, queue):
    open_ticket(caller)
    change_work(app, failed_at=utcnow(), failures=3)
    assert relay_once(settings, app.config["SESSIONMAKER"], queue) == 0
    result = app.test_cli_runner().invoke(args=["retry-failed"])
    assert "1 failed follow-up(s) will run again" in result.output
    assert relay_once(settings, app.config["SESSIONMAKER"], queue) == 1
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.events[-1].kind == "follow_up_retried"
