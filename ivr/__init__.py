"""The support line's web app: Twilio webhooks, the JSON API, the dispatchers' console and the CLI."""

from __future__ import annotations

import logging

from flask import Flask
from redis import Redis
from werkzeug.middleware.proxy_fix import ProxyFix

from helpdesk import oncall
from helpdesk.hours import BusinessHours
from ivr.settings import Settings
from ivr.status_guard import RedisStatusGuard
from storage.db import make_engine, make_notes_engine, make_sessionmaker


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from `settings`, or from the environment."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.config["BUSINESS_HOURS"] = BusinessHours.parse(
        settings.business_hours, settings.business_timezone, closed_on_holidays=settings.business_holidays == "closed"
    )
    app.config["ENGINE"] = engine = make_engine(settings.database_url)
    app.config["NOTES_ENGINE"] = make_notes_engine(engine)  # what the line may lose to a crash (storage.calls)
    # What every session of the app knows beyond its settings: whether on-call alerts are on (helpdesk.oncall).
    app.config["SESSION_INFO"] = oncall.session_info(bool(settings.oncall_sms_to))
    app.config["SESSIONMAKER"] = make_sessionmaker(engine, app.config["SESSION_INFO"])
    # Short timeouts: a webhook must answer quickly even when Redis does not.
    redis = Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    app.config["STATUS_GUARD"] = RedisStatusGuard(
        redis, f"ivr:{settings.queue_name}:status", settings.status_max_failures, settings.status_lock_seconds
    )
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)  # type: ignore[method-assign]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    register_blueprints(app)
    register_operations(app)
    register_db_teardown(app)
    register_commands(app)
    return app


def register_blueprints(app: Flask) -> None:
    from ivr import api
    from ivr.console import register_console
    from ivr.voice import webhooks

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    register_console(app)


def register_operations(app: Flask) -> None:
    """What operators probe: GET /metrics for Prometheus, GET /healthz for the load balancer."""
    from ivr.health import register_health
    from ivr.metrics import register_metrics

    register_metrics(app)
    register_health(app)


def register_db_teardown(app: Flask) -> None:
    from ivr.db import register_db

    register_db(app)


def register_commands(app: Flask) -> None:
    from ivr.cli import register_cli
    from ivr.simulator.commands import register_simulator_cli

    register_cli(app)
    register_simulator_cli(app)
