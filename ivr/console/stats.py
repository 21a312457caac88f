"""The statistics page, for dispatchers: a period's tickets per day, response and restore times, SLA breaches,
the line's calls and the worker's backlog; and the same figures as CSV.

The period (from and to, days on the help desk's clock, `to` included) and the customer are
a GET form, so that a page is a link to share: nothing changes, so no CSRF token. A bad
date is told beside its field and the current month shown instead. The figures are
storage.stats'; the charts are drawn here on the server (ivr.console.charts), each with a
table of the same figures under it.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, render_template, request
from flask_wtf import FlaskForm
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from wtforms import DateField, SelectField
from wtforms.validators import Optional

from ivr.console import charts
from ivr.console.auth import dispatcher_required
from ivr.console.forms import _wtforms_words
from ivr.console.i18n import language, t, words
from ivr.console.queue import span_words, ticket_url
from ivr.db import db_session
from storage.models import Customer, utcnow
from storage.queue import get_customers
from storage.stats import Durations, Statistics, as_csv, statistics
from storage.stats import period as period_bounds
from storage.tickets import URGENCIES

bp = Blueprint("stats", __name__, template_folder="templates", url_prefix="/console")

MAX_DAYS = 366  # a year at most: a day is a bar, and a bar must stay visible
YEARS = range(2000, 2100)  # dates outside these are typing mistakes (and would overflow a time zone's arithmetic)
CHANNELS = ("phone", "console", "email")  # the order of the series; any other channel follows, by name
LEVELS = ("premium", "business", "base")


class PeriodForm(FlaskForm):
    """The period (from, to: days, `to` included) and one customer or all; read from the query string."""

    class Meta:
        csrf = False  # a GET form that changes nothing: its URL is a page to share

        def get_translations(self, form: Any) -> Any:
            return _wtforms_words(language())

    since = DateField(name="from", id="stats-from", validators=[Optional()])
    until = DateField(name="to", id="stats-to", validators=[Optional()])
    customer = SelectField(id="stats-customer", default="")

    def validate(self, extra_validators: Any = None) -> bool:
        """The fields, then the period as a whole; every message in the console's words."""
        valid = super().validate(extra_validators)
        for field in (self.since, self.until):
            if field.errors or (field.data is not None and field.data.year not in YEARS):
                field.errors = [t("stats_bad_date")]
                valid = False
        if self.customer.errors:
            self.customer.errors = [t("stats_bad_customer")]
        if not (self.since.errors or self.until.errors) and self.since.data and self.until.data:
            if self.until.data < self.since.data:
                self.until.errors = [t("stats_end_before_start")]
                valid = False
            elif (self.until.data - self.since.data).days + 1 > MAX_DAYS:
                self.until.errors = [t("stats_too_long", days=MAX_DAYS)]
                valid = False
        return valid

    @property
    def dates_refused(self) -> bool:
        return bool(self.since.errors or self.until.errors)


@dataclass(frozen=True)
class Period:
    """The days chosen, on the help desk's clock, and the customer (None: all)."""

    first: date
    last: date  # included
    customer: Customer | None
    zone: ZoneInfo

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC: from the first day's midnight to the midnight after the last."""
        return period_bounds(self.first, self.last, self.zone.key)

    @property
    def customer_code(self) -> str | None:
        return self.customer.code if self.customer is not None else None

    def query(self) -> dict[str, str]:
        """The query string that shows this period again (the page's, the CSV's, the API's)."""
        chosen = {"from": self.first.isoformat(), "to": self.last.isoformat()}
        if self.customer is not None:
            chosen["customer"] = self.customer.code
        return chosen

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


# -- the views ------------------------------------------------------------------------------------


@bp.get("/stats")
@dispatcher_required
def index() -> Any:
    """The page: the period's form, then the charts with their tables, the breaches, the calls, the backlog."""
    form, period = chosen_period(request.args)
    stats = period_statistics(period)
    page = render_template(
        "stats.html",
        form=form,
        period=period,
        figures=Figures.of(stats, period),
        word=word,
        minutes=minutes_text,
        seconds=seconds_text,
        ticket_url=ticket_url,
    )
    return page, (200 if not form.errors else 400)


@bp.get("/stats.csv")
@dispatcher_required
def download() -> Any:
    """The same figures as CSV (storage.stats.as_csv), named for the period and the customer."""
    form, period = chosen_period(request.args)
    if form.errors:
        refused = "; ".join(f"{field.name}: {' '.join(field.errors)}" for field in form if field.errors)
        return Response(refused + "\n", status=400, mimetype="text/plain")
    name = "_".join(filter(None, ("stats", period.first.isoformat(), period.last.isoformat(), period.customer_code)))
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", name)  # a customer's code is free text: the header gets a safe name
    return Response(
        as_csv(period_statistics(period)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


# -- reading the form -------------------------------------------------------------------------------


def chosen_period(args: MultiDict[str, str]) -> tuple[PeriodForm, Period]:
    """The form as read from `args`, and the period to show: the chosen one, else the current month."""
    zone = ZoneInfo(current_app.config["SETTINGS"].business_timezone)
    customers = get_customers(db_session())
    form = PeriodForm(formdata=args)
    form.customer.choices = [("", t("stats_all_customers"))] + [(c.code, f"{c.name} ({c.code})") for c in customers]
    form.validate()
    today = utcnow().astimezone(zone).date()
    if form.dates_refused:
        first, last = month_of(today)
    else:
        first = form.since.data or month_of(form.until.data or today)[0]
        last = form.until.data or month_of(form.since.data or today)[1]
    chosen = next((c for c in customers if c.code == form.customer.data), None) if not form.customer.errors else None
    # The form shows what is shown: a refused date gives way to the current month's (a date input could not
    # show the refused text anyway); the message beside the field says so.
    form.since.data, form.until.data = first, last
    form.since.raw_data = form.until.raw_data = []
    return form, Period(first, last, chosen, zone)


def month_of(day: date) -> tuple[date, date]:
    """The first and the last day of `day`'s month."""
    return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])


def period_statistics(period: Period) -> Statistics:
    """storage.stats' figures of the period, its days counted on the help desk's clock."""
    start, end = period.bounds
    return statistics(
        db_session().connection(),
        start,
        end,
        customer_code=period.customer_code,
        now=utcnow(),
        timezone=period.zone.key,
    )


# -- the figures as the page shows them --------------------------------------------------------------


def word(kind: str, code: str | None) -> str:
    """A code (an urgency, a level, a channel, a clock) in the reader's words; an unknown code as itself."""
    key = f"stats_{kind}_{code or 'none'}"
    return t(key) if key in words(language()) or key in words("it") else (code or "—")


def minutes_text(value: float) -> str:
    """Minutes as a dispatcher reads them: "2 h 5 min", "1 g 3 h"; under a minute, in seconds."""
    if value < 1:
        return t("stats_seconds", n=f"{value * 60:.0f}")
    return span_words(timedelta(minutes=value))


def seconds_text(value: float | None) -> str:
    return t("stats_none") if value is None else t("stats_seconds", n=f"{value:.0f}")


def day_label(day: date) -> str:
    return day.strftime("%d/%m")


@dataclass(frozen=True)
class DurationRow:
    """A line of a times table: the urgency and level in words, and the figures."""

    urgency: str
    level: str
    figures: Durations


@dataclass(frozen=True)
class Figures:
    """Everything the page shows, ready for the template: the charts' data, their drawings, the rows of the tables."""

    tickets: charts.BarChart
    tickets_svg: Markup
    total_tickets: int
    response: charts.BarChart
    response_svg: Markup
    response_rows: list[DurationRow]
    restore: charts.BarChart
    restore_svg: Markup
    restore_rows: list[DurationRow]
    stats: Statistics

    @classmethod
    def of(cls, stats: Statistics, period: Period) -> Figures:
        tickets = tickets_chart(stats, period)
        response_rows, restore_rows = duration_rows(stats.first_response), duration_rows(stats.restore)
        response = durations_chart("stats-response-chart", t("stats_response_chart"), response_rows)
        restore = durations_chart("stats-restore-chart", t("stats_restore_chart"), restore_rows)
        return cls(
            tickets=tickets,
            tickets_svg=charts.stacked(tickets),
            total_tickets=sum(count.tickets for count in stats.tickets_per_day),
            response=response,
            response_svg=charts.grouped(response),
            response_rows=response_rows,
            restore=restore,
            restore_svg=charts.grouped(restore),
            restore_rows=restore_rows,
            stats=stats,
        )

    def ticket_total(self, day_index: int) -> int:
        return int(sum(series.values[day_index] or 0 for series in self.tickets.series))


def tickets_chart(stats: Statistics, period: Period) -> charts.BarChart:
    """Tickets per day, one series per channel and urgency, every day of the period a bar (empty or not)."""
    days = sorted(set(period.days()) | {count.day for count in stats.tickets_per_day})
    pairs = sorted({(count.channel, count.urgency) for count in stats.tickets_per_day}, key=_series_order)
    counts = {(count.day, count.channel, count.urgency): count.tickets for count in stats.tickets_per_day}
    series = tuple(
        charts.Series(
            key=f"{channel}/{urgency}",
            label=t("stats_series", channel=word("channel", channel), urgency=word("urgency", urgency)),
            values=tuple(float(counts.get((day, channel, urgency), 0)) for day in days),
        )
        for channel, urgency in pairs
    )
    total = sum(count.tickets for count in stats.tickets_per_day)
    return charts.BarChart(
        ident="stats-tickets-chart",
        title=t("stats_tickets_chart"),
        description=t("stats_tickets_desc", total=total),
        categories=tuple(day_label(day) for day in days),
        series=series,
        unit=t("stats_tickets_unit"),
        value_text=lambda value: f"{value:.0f}",
        tick_text=lambda value: f"{value:.0f}",
        whole_numbers=True,
    )


def duration_rows(durations: Iterable[Durations]) -> list[DurationRow]:
    """The times by urgency (the most urgent first), then by level (the highest first)."""
    ordered = sorted(durations, key=lambda d: (_rank(URGENCIES[::-1], d.urgency), _rank(LEVELS, d.level)))
    return [DurationRow(word("urgency", d.urgency), word("level", d.level), d) for d in ordered]


def durations_chart(ident: str, title: str, rows: Sequence[DurationRow]) -> charts.BarChart:
    """The median and the 90th percentile side by side, for each urgency and level."""
    return charts.BarChart(
        ident=ident,
        title=title,
        description=t("stats_times_desc"),
        categories=tuple(t("stats_category", urgency=row.urgency, level=row.level) for row in rows),
        series=(
            charts.Series("median", t("stats_median"), tuple(row.figures.median_minutes for row in rows)),
            charts.Series("p90", t("stats_p90"), tuple(row.figures.p90_minutes for row in rows)),
        ),
        unit=t("stats_minutes_unit"),
        value_text=minutes_text,
        whole_numbers=True,  # ticks a whole minute apart at least
    )


def _rank(order: Sequence[str], code: str) -> tuple[int, str]:
    return (order.index(code), "") if code in order else (len(order), code)


def _series_order(pair: tuple[str, str]) -> tuple[tuple[int, str], tuple[int, str]]:
    channel, urgency = pair
    return _rank(CHANNELS, channel), _rank(URGENCIES[::-1], urgency)
