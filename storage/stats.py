"""A period's statistics: tickets per day, response and restore times, SLA breaches, calls, the worker's backlog.

Everything is counted in SQL (aggregations, no per-ticket Python), so that a month stays
quick at a million tickets, and gives the same figures on SQLite and PostgreSQL: medians
and 90th percentiles are PostgreSQL's `percentile_cont` (linear interpolation between the
two nearest ranks), which SQLite lacks; there the same interpolation is done over
ROW_NUMBER and COUNT windows.

The period is [start, end) in UTC instants: the tickets opened in it (by `created_at`), the
calls started in it (by `started_at`). A ticket's level is its customer's SLA level once the
caller is matched to the customer, else "base" (helpdesk.deadlines.level_of, in SQL).
Durations are wall-clock minutes from the opening to the first response, to the restore
(not SLA time: that needs each level's business hours, counted in Python per ticket).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Integer,
    Select,
    String,
    Table,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)

from storage.calls import FINAL_STATUSES
from storage.models import Call, Customer, PendingWork, Ticket
from storage.outbox import FOLLOW_UP, VOICE_MESSAGE
from storage.tickets import URGENCIES


@dataclass(frozen=True)
class DayCount:
    day: date  # the day of the tickets' opening, in the time zone asked for (UTC unless told)
    channel: str
    urgency: str
    tickets: int


@dataclass(frozen=True)
class Durations:
    urgency: str
    level: str
    count: int
    median_minutes: float | None
    p90_minutes: float | None


@dataclass(frozen=True)
class Breach:
    number: str
    customer: str | None
    urgency: str
    level: str
    clock: str  # "response" | "restore"
    due_at: datetime
    met_at: datetime | None  # None: not yet


@dataclass(frozen=True)
class CallFigures:
    answered: int
    abandoned: int  # ended before a ticket
    forwarded: int
    status_answered: int


@dataclass(frozen=True)
class Statistics:
    start: datetime
    end: datetime
    customer_code: str | None
    tickets_per_day: list[DayCount]
    first_response: list[Durations]
    restore: list[Durations]
    breaches: list[Breach]
    calls: CallFigures
    to_ticket_number_count: int
    to_ticket_number_median_seconds: float | None
    to_ticket_number_p90_seconds: float | None
    transcription_backlog: int
    failed_jobs: int


UNMATCHED_LEVEL = "base"  # helpdesk.sla.UNREGISTERED_LEVEL (storage does not import helpdesk)
RESPONSE, RESTORE = "response", "restore"  # the two clocks (helpdesk.deadlines)
MEDIAN, P90 = 0.5, 0.9

_tickets: Table = Ticket.__table__  # type: ignore[assignment]
_customers: Table = Customer.__table__  # type: ignore[assignment]
_calls: Table = Call.__table__  # type: ignore[assignment]
_work: Table = PendingWork.__table__  # type: ignore[assignment]


class UnknownCustomer(LookupError):
    """No customer has the code asked for."""


def period(first: date, last: date, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the days `first` to `last` (both included) in the time zone."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


def statistics(
    connection: Connection,
    start: datetime,
    end: datetime,
    *,
    customer_code: str | None = None,
    now: datetime,
    timezone: str = "UTC",
) -> Statistics:
    """The statistics of the tickets opened (and calls started) in [start, end), as of `now` (for breaches).

    `customer_code`: only that customer's tickets and calls (UnknownCustomer if no customer has it);
    the worker's backlog and failed jobs are the whole line's, as they are now. `timezone`:
    where the tickets' days are counted (the help desk's, Europe/Rome, for people).
    """
    customer_id: int | None = None
    if customer_code is not None:
        customer_id = connection.scalar(select(_customers.c.id).where(_customers.c.code == customer_code))
        if customer_id is None:
            raise UnknownCustomer(customer_code)
    opened = _period_tickets(start, end, customer_id)
    # The call looked up by each ticket's CallSid (its unique index), not joined: a join lets
    # PostgreSQL, misjudging how many tickets a month holds, hash the whole calls table.
    call_started = select(_calls.c.started_at).where(_calls.c.call_sid == opened.c.call_sid).scalar_subquery()
    to_number = (
        select(_seconds(connection, opened.c.created_at, call_started).label("value"))
        .where(opened.c.call_sid.is_not(None))
        .offset(0)  # kept a subquery: flattened, PostgreSQL would look each call up once per aggregate
        .subquery()
    )
    [(count, median, p90)] = [row[-3:] for row in _percentiles(connection, to_number, [])] or [(0, None, None)]
    backlog, failed = _work_figures(connection)
    return Statistics(
        start=start,
        end=end,
        customer_code=customer_code,
        tickets_per_day=_tickets_per_day(connection, opened, start, end, timezone),
        first_response=_durations(connection, opened, opened.c.first_response_at),
        restore=_durations(connection, opened, opened.c.restored_at),
        breaches=_breaches(connection, opened, now),
        calls=_call_figures(connection, start, end, customer_id),
        to_ticket_number_count=int(count),
        to_ticket_number_median_seconds=_float(median),
        to_ticket_number_p90_seconds=_float(p90),
        transcription_backlog=backlog,
        failed_jobs=failed,
    )


def _period_tickets(start: datetime, end: datetime, customer_id: int | None) -> Any:
    """The tickets opened in the period, with their level and their customer's name."""
    level = case(
        (or_(_tickets.c.needs_match, _customers.c.sla.is_(None)), literal(UNMATCHED_LEVEL)),
        else_=_customers.c.sla,
    )
    conditions = [_tickets.c.created_at >= start, _tickets.c.created_at < end]
    if customer_id is not None:
        conditions.append(_tickets.c.customer_id == customer_id)
    return (
        select(
            _tickets.c.number,
            _tickets.c.channel,
            _tickets.c.urgency,
            _tickets.c.call_sid,
            _tickets.c.created_at,
            _tickets.c.first_response_at,
            _tickets.c.restored_at,
            _tickets.c.response_due_at,
            _tickets.c.restore_due_at,
            _customers.c.name.label("customer"),
            level.label("level"),
        )
        .select_from(_tickets.outerjoin(_customers, _customers.c.id == _tickets.c.customer_id))
        .where(*conditions)
        .subquery("period")
    )


def _seconds(connection: Connection, later: Any, earlier: Any) -> ColumnElement[float]:
    """The wall-clock seconds between two instants, in SQL."""
    if connection.dialect.name == "postgresql":
        return cast(extract("epoch", later - earlier), Float)
    # To the millisecond, what SQLite keeps of a time: Julian days are floats, a few microseconds off.
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)


def _tickets_per_day(
    connection: Connection, period: Any, start: datetime, end: datetime, timezone: str
) -> list[DayCount]:
    if connection.dialect.name == "postgresql":
        day: Any = func.date(func.timezone(timezone, period.c.created_at))
    else:  # SQLite knows no time zones: the UTC offsets in force in the period, one CASE
        offsets = _offsets(start, end, ZoneInfo(timezone))
        shift: Any = literal(_modifier(offsets[-1][1]))
        if len(offsets) > 1:
            shift = case(
                *((period.c.created_at < until, literal(_modifier(offset))) for until, offset in offsets[:-1]),
                else_=shift,
            )
        day = func.date(period.c.created_at, shift)
    # Grouped by the column of a subquery: PostgreSQL would not see the same expression in
    # GROUP BY (its bound parameters differ).
    days = select(day.label("day"), period.c.channel, period.c.urgency).subquery("days")
    keys = (days.c.day, days.c.channel, days.c.urgency)
    rows = connection.execute(select(*keys, func.count()).group_by(*keys).order_by(*keys))
    return [
        DayCount(d if isinstance(d, date) else date.fromisoformat(d), channel, urgency, tickets)
        for d, channel, urgency, tickets in rows
    ]


def _offsets(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, timedelta]]:
    """The zone's UTC offsets in [start, end): (until, offset) each, the last one's `until` being `end`."""

    def offset(moment: datetime) -> timedelta:
        return moment.astimezone(zone).utcoffset() or timedelta()

    found: list[tuple[datetime, timedelta]] = []
    current, moment = offset(start), start
    while moment < end:
        step = min(moment + timedelta(days=1), end)
        if offset(step) != current:  # a change within the day: found to the quarter hour
            quarter = moment
            while offset(quarter) == current:
                quarter += timedelta(minutes=15)
            found.append((quarter, current))
            current, step = offset(quarter), quarter
        moment = step
    return [*found, (end, current)]


def _modifier(offset: timedelta) -> str:
    return f"{int(offset.total_seconds()):+d} seconds"


def _percentiles(connection: Connection, values: Any, groups: list[str]) -> list[tuple[Any, ...]]:
    """(*groups, count, median, p90) of `values.c.value` (NULLs not counted), one row per group of `values`.

    PostgreSQL: percentile_cont. SQLite: the same interpolation, between the values ranked
    floor(p * (n - 1)) + 1 and the next, picked out of ROW_NUMBER and COUNT windows.
    Without groups, no row when there are no values.
    """
    keys = [values.c[name] for name in groups]
    value = values.c.value
    if connection.dialect.name == "postgresql":
        statement: Select[Any] = select(
            *keys,
            func.count(value),
            func.percentile_cont(MEDIAN).within_group(value),
            func.percentile_cont(P90).within_group(value),
        )
        if keys:
            statement = statement.group_by(*keys)
        rows = [tuple(row) for row in connection.execute(statement)]
        return [row for row in rows if keys or row[-3]]
    ranked = select(
        *keys,
        value,
        func.row_number().over(partition_by=keys or None, order_by=(value.is_(None), value)).label("row_rank"),
        func.count(value).over(partition_by=keys or None).label("n"),
    ).subquery("ranked")
    rank, n, ranked_keys = ranked.c.row_rank, ranked.c.n, [ranked.c[name] for name in groups]

    def nearest(p: float) -> tuple[Any, Any, Any]:
        position = literal(p) * (n - 1)
        below = cast(position, Integer)  # floor: never negative
        low = func.max(case((rank == below + 1, ranked.c.value)))
        high = func.max(case((rank == below + 2, ranked.c.value)))
        return low, high, position - below

    picked = []
    for p in (MEDIAN, P90):
        low, high, fraction = nearest(p)
        picked += [
            low.label(f"low{round(p * 100)}"),
            high.label(f"high{round(p * 100)}"),
            func.max(fraction).label(f"fraction{round(p * 100)}"),
        ]
    grouped = select(*ranked_keys, n, *picked).group_by(*ranked_keys, n).subquery("grouped")

    def interpolated(p: float) -> Any:
        low, high, fraction = (
            grouped.c[f"low{round(p * 100)}"],
            grouped.c[f"high{round(p * 100)}"],
            grouped.c[f"fraction{round(p * 100)}"],
        )
        return low + fraction * (func.coalesce(high, low) - low)

    result = connection.execute(
        select(*(grouped.c[name] for name in groups), grouped.c.n, interpolated(MEDIAN), interpolated(P90))
    )
    return [tuple(row) for row in result if keys or row[-3]]


def _order(urgency: str, level: str) -> tuple[int, str]:
    return (URGENCIES.index(urgency) if urgency in URGENCIES else len(URGENCIES), level)


def _durations(connection: Connection, period: Any, stop: Any) -> list[Durations]:
    """By urgency and level: the tickets whose clock stopped, and the median and p90 minutes it took."""
    minutes = select(
        period.c.urgency, period.c.level, (_seconds(connection, stop, period.c.created_at) / 60.0).label("value")
    ).subquery("minutes")
    rows = _percentiles(connection, minutes, ["urgency", "level"])
    found = [
        Durations(urgency, level, count, _float(median), _float(p90)) for urgency, level, count, median, p90 in rows
    ]
    return sorted(found, key=lambda d: _order(d.urgency, d.level))


def _float(value: object) -> float | None:
    return float(value) if value is not None else None  # type: ignore[arg-type]


def _breaches(connection: Connection, period: Any, now: datetime) -> list[Breach]:
    """The deadlines passed unmet, or met late: response and restore, earliest deadline first.

    Tickets from before the deadlines were kept (no deadline stored) are left out.
    """

    def clock(name: str, due: Any, met: Any) -> Select[Any]:
        late = or_(and_(met.is_(None), due < now), met > due)
        return select(
            period.c.number,
            period.c.customer,
            period.c.urgency,
            period.c.level,
            literal_column(f"'{name}'", String).label("clock"),
            due.label("due_at"),
            met.label("met_at"),
        ).where(due.is_not(None), late)

    both = union_all(
        clock(RESPONSE, period.c.response_due_at, period.c.first_response_at),
        clock(RESTORE, period.c.restore_due_at, period.c.restored_at),
    ).subquery("breaches")
    rows = connection.execute(select(both).order_by(both.c.due_at, both.c.number, both.c.clock))
    due_type = _tickets.c.response_due_at.type
    process = due_type.result_processor(connection.dialect, None)  # a union loses the column type on SQLite
    return [
        Breach(number or "", customer, urgency, level, clock_, _instant(due_at, process), _maybe(met_at, process))
        for number, customer, urgency, level, clock_, due_at, met_at in rows
    ]


def _instant(value: Any, process: Any) -> datetime:
    if isinstance(value, str) and process is not None:
        value = process(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _maybe(value: Any, process: Any) -> datetime | None:
    return _instant(value, process) if value is not None else None


def _call_figures(connection: Connection, start: datetime, end: datetime, customer_id: int | None) -> CallFigures:
    """Calls started in the period: all, ended without a ticket, dialled to a technician, told a ticket's status."""
    conditions = [_calls.c.started_at >= start, _calls.c.started_at < end]
    if customer_id is not None:
        conditions.append(_calls.c.customer_id == customer_id)

    def counted(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    abandoned = and_(_calls.c.call_status.in_(FINAL_STATUSES), _calls.c.ticket_id.is_(None))
    row = connection.execute(
        select(
            func.count(),
            counted(abandoned),
            func.count(_calls.c.forwarded_at),
            func.count(_calls.c.status_heard_at),
        ).where(*conditions)
    ).one()
    return CallFigures(*(int(value) for value in row))


def _work_figures(connection: Connection) -> tuple[int, int]:
    """(transcription backlog, failed jobs): recordings and voice messages not yet done, and work failed for good."""
    open_work = and_(_work.c.done_at.is_(None), _work.c.failed_at.is_(None))
    failed = and_(_work.c.done_at.is_(None), _work.c.failed_at.is_not(None))
    transcription = _work.c.kind.in_((FOLLOW_UP, VOICE_MESSAGE))
    row = connection.execute(
        select(
            func.coalesce(func.sum(case((and_(open_work, transcription), 1), else_=0)), 0),
            func.coalesce(func.sum(case((failed, 1), else_=0)), 0),
        ).where(_work.c.done_at.is_(None))
    ).one()
    return int(row[0]), int(row[1])


def _json(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    return value


def as_dict(stats: Statistics) -> dict[str, object]:
    """The statistics as JSON-ready values (instants in ISO 8601, UTC; days as YYYY-MM-DD): the API's body.

    The keys are the fields' names, nested as in `Statistics`.
    """
    return {key: _json(value) for key, value in asdict(stats).items()}


# The CSV's columns: each section fills those that apply to it.
CSV_COLUMNS = (
    "section",
    "figure",
    "value",
    "day",
    "channel",
    "urgency",
    "level",
    "count",
    "median_minutes",
    "p90_minutes",
    "number",
    "customer",
    "clock",
    "due_at",
    "met_at",
)


def as_csv(stats: Statistics) -> str:
    """The statistics as one CSV, its sections told apart by a "section" column: what the console downloads.

    Sections: "figures" (one figure a row: the period, the calls, the time to the ticket
    number, the backlog), "tickets_per_day" (figure "tickets"), "first_response", "restore", "breaches".
    """
    data = as_dict(stats)
    rows: list[dict[str, object]] = []
    figures: list[tuple[str, object]] = [
        ("start", data["start"]),
        ("end", data["end"]),
        ("customer_code", data["customer_code"]),
        *((f"calls_{name}", value) for name, value in asdict(stats.calls).items()),
        *(
            (f.name, data[f.name])
            for f in fields(stats)
            if f.name.startswith("to_ticket_number") or f.name in ("transcription_backlog", "failed_jobs")
        ),
    ]
    rows += [{"section": "figures", "figure": name, "value": value} for name, value in figures]
    rows += [{"section": "tickets_per_day", "figure": "tickets", **row} for row in _rows(data["tickets_per_day"])]
    rows += [{"section": "first_response", **row} for row in _rows(data["first_response"])]
    rows += [{"section": "restore", **row} for row in _rows(data["restore"])]
    rows += [{"section": "breaches", **row} for row in _rows(data["breaches"])]
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        if "tickets" in row:  # a day's count goes in `value`
            row["value"] = row.pop("tickets")
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return out.getvalue()


def _rows(value: object) -> list[dict[str, object]]:
    assert isinstance(value, list)
    return value
