"""A month's statistics at 1,000 and at 1,000,000 tickets: the same month, timed as the tables grow.

    .venv/bin/python -m benchmarks.stats [--database-url URL] [--large 1000000] [--times 7]

Fills a fresh database (a temporary SQLite file by default; on PostgreSQL, a private schema
of the database given, dropped after the run) with one month of tickets (the first round: 1,000 tickets in
October 2026, of three customers of each level and unmatched callers, with their calls, their
follow-up work, first responses, restores and deadlines, some of them missed), then with the
years before it up to 1,000,000 tickets, in bulk (INSERT ... SELECT over a generated series, as
benchmarks.lookups). At each size it times storage.stats.statistics for October, for everyone
and for one customer, the median of several runs, and prints the 1M/1k ratio; flat is close to 1.
"""

from __future__ import annotations

import statistics as median_of
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, func, insert, select, text

from benchmarks import database_of_its_own, print_ratios, thousand_and_million
from storage.db import make_engine, upgrade
from storage.models import Customer, Ticket
from storage.stats import period, statistics

TIMEZONE = "Europe/Rome"
FIRST, LAST = date(2026, 10, 1), date(2026, 10, 31)  # the month timed
NOW = datetime(2026, 11, 15, tzinfo=UTC)
HISTORY_STEP = 90  # seconds between tickets before the month: a million reach back some three years
LEVELS = ("base", "business", "premium")


def moment(dialect: str, base: str, seconds: str) -> str:
    """SQL for the instant `seconds` (an SQL expression) after `base` (a column or a parameter), as stored."""
    if dialect == "postgresql":
        return f"({base} + make_interval(secs => {seconds}))"
    # SQLite keeps instants as text, to the microsecond: the same shape, so that comparisons hold.
    return f"(strftime('%Y-%m-%d %H:%M:%S', {base}, ({seconds}) || ' seconds') || '.000000')"


def fill(engine: Engine, first: int, last: int, month_tickets: int, customers: list[int]) -> None:
    """Tickets `first`..`last` (the first `month_tickets` in the month, the others before it), their calls
    (a ticket's call, and a call without a ticket for one ticket in ten) and their follow-up work."""
    dialect = engine.dialect.name
    start, end = period(FIRST, LAST, TIMEZONE)
    month_seconds = int((end - start).total_seconds()) - 1
    if dialect == "postgresql":
        series, prefix, base = "generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS n(i)", "", ":start"
        base = "CAST(:start AS timestamptz)"
    else:
        series = "n"
        prefix = "WITH RECURSIVE n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
        base = ":start"
    offset = (
        f"CASE WHEN n.i <= {month_tickets} THEN (n.i * {month_seconds // max(month_tickets, 1)}) % {month_seconds}"
        f" ELSE -{HISTORY_STEP} * (n.i - {month_tickets}) END"
    )
    created = moment(dialect, base, offset)
    c1, c2, c3 = customers
    tickets = text(
        prefix + "INSERT INTO tickets (number, status, urgency, channel, language, customer_id, needs_match,"
        " voicemail, call_sid, created_at, updated_at, first_response_at, restored_at, response_due_at,"
        " restore_due_at)"
        " SELECT '8' || n.i, CASE WHEN n.i % 2 = 0 THEN 'resolved' ELSE 'diagnostics' END,"
        " CASE (n.i / 7) % 4 WHEN 0 THEN 'low' WHEN 1 THEN 'normal' WHEN 2 THEN 'high' ELSE 'critical' END,"
        " CASE WHEN n.i % 5 = 0 THEN 'email' ELSE 'phone' END, 'it',"
        f" CASE n.i % 4 WHEN 1 THEN {c1} WHEN 2 THEN {c2} WHEN 3 THEN {c3} ELSE NULL END, n.i % 4 = 0, false,"
        " CASE WHEN n.i % 5 = 0 THEN NULL ELSE 'CAB' || n.i END,"
        f" {created}, {created},"
        f" CASE WHEN n.i % 10 = 0 THEN NULL ELSE {moment(dialect, created, '60 * ((n.i * 37) % 40)')} END,"
        f" CASE WHEN n.i % 2 = 0 THEN {moment(dialect, created, '60 * ((n.i * 53) % 1600)')} ELSE NULL END,"
        f" {moment(dialect, created, '60 * 30')}, {moment(dialect, created, '60 * 1440')}"
        f" FROM {series}"
    )
    since = "CAST(:since AS integer)" if dialect == "postgresql" else ":since"
    calls = text(
        "INSERT INTO calls (call_sid, caller, language, attempts, inquiry_index, call_status, customer_id,"
        " ticket_id, started_at, updated_at, forwarded_at)"
        f" SELECT t.call_sid, '+390200000000', 'it', 0, 0, 'completed', t.customer_id, t.id,"
        f" {moment(dialect, 't.created_at', '-(60 + t.id % 240)')}, t.created_at,"
        " CASE WHEN t.id % 7 = 0 THEN t.created_at ELSE NULL END"
        f" FROM tickets t WHERE t.id > {since} AND t.call_sid IS NOT NULL"
    )
    no_ticket = text(
        "INSERT INTO calls (call_sid, caller, language, attempts, inquiry_index, call_status, customer_id,"
        " started_at, updated_at, status_heard_at)"
        f" SELECT 'CAX' || t.id, '+390200000000', 'it', 0, 0, 'completed', t.customer_id,"
        f" {moment(dialect, 't.created_at', '600')}, t.created_at,"
        f" CASE WHEN t.id % 20 = 0 THEN {moment(dialect, 't.created_at', '630')} ELSE NULL END"
        f" FROM tickets t WHERE t.id > {since} AND t.id % 10 = 0"
    )
    work = text(
        "INSERT INTO pending_work (key, kind, ticket_id, created_at, version, runs, starts, failures, done_at,"
        " failed_at)"
        " SELECT 'follow_up:' || t.id, 'follow_up', t.id, t.created_at, 0, 1, 0, 0,"
        # Unfinished work is the month's (the line's backlog now), whatever the history.
        f" CASE WHEN t.id % 250 = 0 AND t.id <= {month_tickets} THEN NULL ELSE t.created_at END,"
        f" CASE WHEN t.id % 500 = 0 AND t.id <= {month_tickets} THEN t.created_at ELSE NULL END"
        f" FROM tickets t WHERE t.id > {since}"
    )
    with engine.begin() as connection:
        since_id = connection.scalar(select(func.coalesce(func.max(Ticket.id), 0)))
        connection.execute(tickets, {"first": first, "last": last, "start": _as_stored(dialect, start)})
        for statement in (calls, no_ticket, work):
            connection.execute(statement, {"since": since_id})
        # The planner's statistics, as PostgreSQL's autovacuum keeps them (on SQLite, `PRAGMA optimize`):
        # without them SQLite reads the month's tickets about 1.5 times slower at a million.
        connection.execute(text("ANALYZE"))


def _as_stored(dialect: str, moment_: datetime) -> object:
    return moment_ if dialect == "postgresql" else moment_.strftime("%Y-%m-%d %H:%M:%S.%f")


def median_ms(run: Callable[[], object], times: int) -> float:
    """The median time of `run`, in milliseconds, after one run to warm up."""
    run()
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        run()
        samples.append(time.perf_counter() - began)
    return median_of.median(samples) * 1e3


def measure(engine: Engine, times: int) -> tuple[dict[str, float], dict[str, object]]:
    start, end = period(FIRST, LAST, TIMEZONE)

    def month(customer: str | None) -> Callable[[], object]:
        def run() -> object:
            with engine.connect() as connection:
                return statistics(connection, start, end, customer_code=customer, now=NOW, timezone=TIMEZONE)

        return run

    with engine.connect() as connection:
        figures = _summary(connection, start, end)
    return {
        "a month, everyone": median_ms(month(None), times),
        "a month, one customer": median_ms(month("B2"), times),
    }, figures


def _summary(connection: Connection, start: datetime, end: datetime) -> dict[str, object]:
    found = statistics(connection, start, end, now=NOW, timezone=TIMEZONE)
    return {
        "tickets": sum(day.tickets for day in found.tickets_per_day),
        "breaches": len(found.breaches),
        "calls": found.calls.answered,
        "backlog": found.transcription_backlog,
    }


def run_rounds(url: str, small_size: int, large_size: int, times: int) -> None:
    """Fill the database at `url` to `small_size`, then `large_size` tickets, timing a month's statistics."""
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        for index, level in enumerate(LEVELS, start=1):
            connection.execute(insert(Customer).values(code=f"B{index}", name=f"Bench {level}", sla=level))
        customers = list(connection.scalars(select(Customer.id).order_by(Customer.code)))
    results: dict[int, dict[str, float]] = {}
    filled = 0
    for size in (small_size, large_size):
        began = time.perf_counter()
        fill(engine, filled + 1, size, small_size, customers)
        filled = size
        print(f"filled to {size:,} tickets (and their calls and work) in {time.perf_counter() - began:.1f} s")
        results[size], figures = measure(engine, times)
        print(f"  the month: {figures}", flush=True)

    print(f"\n{engine.dialect.name}: median of {times} runs, {small_size:,} and {large_size:,} tickets\n")
    print_ratios("statistics", (small_size, large_size), results, "ms")
    engine.dispose()


def main() -> None:
    args = thousand_and_million(__doc__, times=7, what="query")
    with database_of_its_own(args.database_url, "stats") as url:
        run_rounds(url, args.small, args.large, args.times)


if __name__ == "__main__":
    main()
