"""GET /healthz: whether the database and Redis answer, for a load balancer or an operator's probe.

200 when both answer, 503 otherwise; each check has a short timeout, so a probe is answered
within seconds even when a service hangs. The answer names the services and says "ok" or
"unreachable", never why: errors can carry hosts, users and URLs.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask, current_app, jsonify
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2


def probe_engine(database_url: str) -> Engine:
    """An engine that opens a new connection for each probe (a pooled one could hide a database that went away),
    giving up on connecting after TIMEOUT_SECONDS."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            # Read-write, never create: SQLite would make a missing file, empty, and the probe would create it.
            uri = Path(database).resolve().as_uri() + "?mode=rw"
            return create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(uri, uri=True, timeout=TIMEOUT_SECONDS),
                poolclass=NullPool,
                hide_parameters=True,
            )
        return create_engine(database_url, poolclass=NullPool, hide_parameters=True)
    connect_args = {"connect_timeout": TIMEOUT_SECONDS}
    return create_engine(database_url, poolclass=NullPool, connect_args=connect_args, hide_parameters=True)


def database_answers(engine: Engine) -> bool:
    """The database takes a connection and shows its schema's version (an empty file or schema has none)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT version_num FROM alembic_version")).first()
        return True
    except SQLAlchemyError as error:
        log.warning("healthz: the database did not answer (%s)", type(error).__name__)
        return False


def redis_answers(redis: Redis) -> bool:
    """Redis answers a PING."""
    try:
        return bool(redis.ping())
    except RedisError as error:
        log.warning("healthz: Redis did not answer (%s)", type(error).__name__)
        return False


def register_health(app: Flask) -> None:
    """Serve GET /healthz, open like /metrics without a token (it tells only up or down)."""
    settings = app.config["SETTINGS"]
    app.extensions["ivr.health"] = (
        probe_engine(settings.database_url),
        Redis.from_url(settings.redis_url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS),
    )

    def healthz() -> Any:
        engine, redis = current_app.extensions["ivr.health"]
        checks = {"database": database_answers(engine), "redis": redis_answers(redis)}
        healthy = all(checks.values())
        body = {
            "status": "ok" if healthy else "unavailable",
            **{name: "ok" if answered else "unreachable" for name, answered in checks.items()},
        }
        return jsonify(body), 200 if healthy else 503, {"Cache-Control": "no-store"}

    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
