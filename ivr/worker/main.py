"""The worker process: an RQ worker (with its scheduler, for retries) beside a relay child.

`python -m ivr.worker` is all a worker machine runs; settings come from the environment.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue, Worker

from ivr.settings import Settings
from ivr.worker import runtime
from ivr.worker.relay import run_relay

log = logging.getLogger(__name__)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if sys.argv[1:] == ["relay"]:
        _relay_while_parent_lives()
        return
    settings = runtime.settings()
    relay = subprocess.Popen([sys.executable, "-m", "ivr.worker", "relay"])
    try:
        _work_while_redis_allows(settings)
    finally:
        relay.terminate()
        relay.wait(timeout=10)


def _work_while_redis_allows(settings: Settings) -> None:
    """Run the RQ worker; when Redis is unreachable (even at start), wait and try again."""
    delay = 1.0
    while True:
        try:
            connection = Redis.from_url(settings.redis_url)
            # Maintenance every minute: jobs of a worker that died are retried within minutes, not ten.
            worker = Worker(
                [Queue(settings.queue_name, connection=connection)], connection=connection, maintenance_interval=60
            )
            worker.work(with_scheduler=True)
            return
        except RedisConnectionError as error:
            log.warning("Redis is not answering (%s); trying again in %.0f s", type(error).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30)


def _relay_while_parent_lives() -> None:
    parent = os.getppid()
    settings = runtime.settings()
    make_session = runtime.session_factory()
    while os.getppid() == parent:
        run_relay(settings, make_session, once=True)
        time.sleep(settings.relay_interval)


if __name__ == "__main__":
    main()
