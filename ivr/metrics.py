"""GET /metrics for Prometheus: what the web process sees, counted where it happens, and the help desk's figures,
read from the database at scrape.

Counted in the web process (prometheus_client's multiprocess mode under gunicorn, so that
a scrape served by either worker adds up every worker's counts):

- `ivr_webhook_duration_seconds{endpoint}`: how long each Twilio webhook took, labelled by
  Flask endpoint (`twilio.voice`, `twilio.step`, ...), never by URL: URLs carry CallSids and
  the menu's state, and would make a series per call. One histogram observe per webhook,
  around its view (the signature check, the work, the TwiML), not in app-wide hooks that
  every request of the app would run.
- `ivr_fallback_answers_total{endpoint}`: webhooks answered with the apology that takes a
  message: on Twilio's fallback URL (`twilio.fallback`: our Voice URL failed as Twilio saw
  it), or by the menu itself when its turn failed (`twilio.voice`, `twilio.step`).

Read from the database at each scrape (`DatabaseCollector`): calls, tickets, outbox work
by state, failed job runs, emails sent and refused, and the time from the end of a call to
its confirmation email. These are rows already; a few COUNT ... GROUP BY queries give
figures exact across processes and machines, that survive restarts, and that include what
the worker did: the worker has no HTTP server to scrape, and RQ forks a work horse per job,
whose in-memory counts would die with it.

`PROMETHEUS_MULTIPROC_DIR` chooses the mode, as prometheus_client reads it: set (gunicorn.conf.py
sets a fresh directory before the workers fork), the scrape merges the workers' files; unset
(`flask run`, tests), the app's own registry is served.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from storage import emails, figures, outbox
from storage.models import utcnow

log = logging.getLogger(__name__)

WEBHOOKS = "twilio"  # the blueprint whose requests are timed
# Twilio waits 15 s for a webhook's answer before it gives up (and calls the fallback URL).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
# From a minute to a day: the confirmation waits for the recording, its transcription and SMTP.
CONFIRMATION_BUCKETS = (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)
CONFIRMATION_WINDOW = timedelta(hours=24)
APOLOGISING = frozenset({"twilio.fallback", "twilio.voice", "twilio.step"})  # the webhooks that may apologise
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class WebhookMetrics:
    """The web process's own metrics: webhook latency and fallback answers, by Flask endpoint."""

    def __init__(self, registry: CollectorRegistry, endpoints: Sequence[str]) -> None:
        self.latency = Histogram(
            "ivr_webhook_duration_seconds",
            "Time to answer a Twilio webhook, by Flask endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fallback = Counter(
            "ivr_fallback_answers",
            "Webhooks answered with the apology that takes a message: on Twilio's fallback URL (twilio.fallback), "
            "or by the menu when its turn failed.",
            ["endpoint"],
            registry=registry,
        )
        # The series exist from the start (an alert on increase() needs them before the first event).
        for endpoint in endpoints:
            self.latency.labels(endpoint)
            if endpoint in APOLOGISING:
                self.fallback.labels(endpoint)

    def fallback_answered(self, endpoint: str) -> None:
        self.fallback.labels(endpoint).inc()


class DatabaseCollector(Collector):
    """The help desk's figures, read from the database at each scrape; `ivr_database_up` 0 when it does not answer.

    The confirmation delay is a gauge histogram of the confirmations sent in the last 24 h,
    built from stored timestamps (`Call.ended_at`, `Ticket.confirmation_sent_at`) rather than
    observed in the worker: the timestamps are already there, the worker's work horses are
    short-lived forks with nothing to scrape, and a window recomputed at each scrape reads
    directly (histogram_quantile over its buckets, no rate()) and goes back to empty when
    nothing is sent, as a live figure should. Its counts fall as the window slides: hence a
    gauge histogram, not a counter-like histogram.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration: collect() reads the database only when scraped

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("ivr_database_up", "1 when the database answered the scrape's queries, else 0.")
        try:
            with self.engine.connect() as connection:
                connection.execution_options(read_only=True)  # SQLite: a reader takes no write lock
                with Session(bind=connection) as session:
                    found = list(self._read(session))
        except SQLAlchemyError as error:
            log.warning("metrics: the database did not answer (%s)", type(error).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *found]

    def _read(self, session: Session) -> Iterable[Metric]:
        calls = CounterMetricFamily("ivr_calls", "Calls the line has stored.")
        calls.add_metric([], figures.get_call_count(session))
        yield calls

        opened = CounterMetricFamily("ivr_tickets", "Tickets opened, by channel.", labels=["channel"])
        by_phase = GaugeMetricFamily("ivr_tickets_in_phase", "Tickets now in each phase.", labels=["phase"])
        channels: dict[str, int] = {}
        phases: dict[str, int] = {}
        for channel, phase, count in figures.get_ticket_counts(session):
            channels[channel] = channels.get(channel, 0) + count
            phases[phase] = phases.get(phase, 0) + count
        for channel, count in sorted(channels.items()):
            opened.add_metric([channel], count)
        for phase, count in sorted(phases.items()):
            by_phase.add_metric([phase], count)
        yield opened
        yield by_phase

        work = GaugeMetricFamily(
            "ivr_outbox_work",
            "The worker's work by kind and state: scheduled (due later), waiting (for the relay), queued (in Redis), "
            "retrying, running, failed (for good) and done.",
            labels=["kind", "state"],
        )
        failed_runs = GaugeMetricFamily(
            "ivr_job_failed_runs",
            "Job runs that raised, summed over the work not done (retried or failed for good), by kind.",
            labels=["kind"],
        )
        runs_by_kind: dict[str, int] = {}
        for row in outbox.get_work_by_state(session):
            work.add_metric([row.kind, row.state], row.count)
            if row.state != outbox.DONE:
                runs_by_kind[row.kind] = runs_by_kind.get(row.kind, 0) + row.failed_runs
        for kind, runs in sorted(runs_by_kind.items()):
            failed_runs.add_metric([kind], runs)
        yield work
        yield failed_runs

        sent = GaugeMetricFamily(
            "ivr_emails",
            "Emails by kind and state: sent, refused (for good, by SMTP) or unsent.",
            labels=["kind", "state"],
        )
        refused = CounterMetricFamily(
            "ivr_emails_refused", "Emails the SMTP server refused for good, by kind.", labels=["kind"]
        )
        for kind, state, count in emails.get_email_counts(session):
            sent.add_metric([kind, state], count)
            if state == emails.REFUSED:
                refused.add_metric([kind], count)
        yield sent
        yield refused

        yield confirmation_delays(figures.get_confirmation_delays(session, utcnow() - CONFIRMATION_WINDOW))


def confirmation_delays(delays: Sequence[float]) -> GaugeHistogramMetricFamily:
    """The gauge histogram of seconds from a call's end to its confirmation email."""
    buckets = [(_bound(bound), sum(1 for d in delays if d <= bound)) for bound in CONFIRMATION_BUCKETS]
    buckets.append(("+Inf", len(delays)))
    return GaugeHistogramMetricFamily(
        "ivr_confirmation_delay_seconds",
        "Seconds from the end of a call to its ticket's confirmation email, for confirmations sent in the last 24 h.",
        buckets=buckets,
        gsum_value=sum(delays),
    )


def _bound(bound: float) -> str:
    return str(int(bound)) if bound.is_integer() else str(bound)


def bearer_accepted(token: str | None) -> bool:
    """No METRICS_TOKEN: open. Otherwise the Authorization header must carry it, compared in constant time."""
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), ("Bearer " + token).encode())


def multiprocess_dir() -> str | None:
    """prometheus_client's multiprocess directory, when the process runs in that mode."""
    return os.environ.get(MULTIPROCESS_VARIABLE) or None


def register_metrics(app: Flask) -> None:
    """Time the webhooks, count the fallback answers, and serve GET /metrics."""
    registry = CollectorRegistry()
    directory = multiprocess_dir()  # chosen once, as prometheus_client chose its values' kind when imported
    if directory is not None:
        os.makedirs(directory, exist_ok=True)
    endpoints = sorted(rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith(WEBHOOKS + "."))
    webhook_metrics = WebhookMetrics(registry, endpoints)
    database = DatabaseCollector(app.config["ENGINE"])
    registry.register(database)
    app.extensions["ivr.metrics"] = webhook_metrics

    for endpoint in endpoints:
        app.view_functions[endpoint] = _timed(app.view_functions[endpoint], webhook_metrics.latency.labels(endpoint))

    def metrics() -> Any:
        if not bearer_accepted(current_app.config["SETTINGS"].metrics_token):
            return jsonify(error="a valid bearer token is required"), 401, {"WWW-Authenticate": "Bearer"}
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(_scrape_registry(registry, database, directory))
        return Response(body, headers={"Content-Type": content_type})

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])


def _timed(view: Callable[..., Any], latency: Histogram) -> Callable[..., Any]:
    """The webhook's view, its duration observed whatever it answers or raises: in the view rather than in
    before/after-request hooks, which Flask would run for every request of the app."""

    @functools.wraps(view)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return view(*args, **kwargs)
        finally:
            latency.observe(time.perf_counter() - started)

    return timed


def _scrape_registry(own: CollectorRegistry, database: DatabaseCollector, directory: str | None) -> CollectorRegistry:
    """What a scrape serves: every worker's files and the database in multiprocess mode, else the app's registry."""
    if directory is None:
        return own
    from prometheus_client import multiprocess

    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=directory)
    merged.register(database)
    return merged


def fallback_answered(endpoint: str | None) -> None:
    """Count a webhook answered with the apology (`ivr.voice.webhooks.apology`)."""
    webhook_metrics: WebhookMetrics | None = current_app.extensions.get("ivr.metrics")
    if webhook_metrics is not None and endpoint:
        webhook_metrics.fallback_answered(endpoint)
