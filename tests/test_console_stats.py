"""The statistics page: a period's figures as the page, the API's JSON and the CSV give them, the charts drawn
on the server, the period's form, and who may see it."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ivr.console import charts
from ivr.console.i18n import words
from storage.models import Call, Customer, PendingWork, Ticket, utcnow
from storage.ticket_numbers import FIRST_SERIAL, ticket_number
from tests.conftest import API_TOKEN, STRANGER, sign_in
from tests.test_console_queue import add_user

pytestmark = pytest.mark.usefixtures("directory")

ROME = ZoneInfo("Europe/Rome")
SVG = "{http://www.w3.org/2000/svg}"
OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}  # a month with a change of clock (25 October)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- the figures: a small, known month -----------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """A ticket of the month, as the test writes it."""

    serial: int
    customer: str | None  # its code; None: an unregistered caller
    urgency: str
    created: str  # UTC
    channel: str = "phone"
    response_due: str | None = None
    responded: str | None = None
    restore_due: str | None = None
    restored: str | None = None
    call_seconds_before: int | None = None  # the call that opened it began this long before the ticket

    @property
    def number(self) -> str:
        return ticket_number(FIRST_SERIAL + 800 + self.serial)


MONTH = (
    # 00:30 in Rome on 1 October, still 30 September in UTC: counted on the 1st
    Opened(0, "2002", "normal", "2026-09-30T22:30:00", responded="2026-09-30T23:00:00", call_seconds_before=45),
    # a critical ticket answered in time and restored late
    Opened(
        1,
        "1001",
        "critical",
        "2026-10-05T08:00:00",
        response_due="2026-10-05T08:30:00",
        responded="2026-10-05T08:10:00",
        restore_due="2026-10-05T12:00:00",
        restored="2026-10-05T13:00:00",
        call_seconds_before=90,
    ),
    # answered late, restored in time
    Opened(
        2,
        "1001",
        "high",
        "2026-10-05T09:00:00",
        response_due="2026-10-05T10:00:00",
        responded="2026-10-05T11:00:00",
        restore_due="2026-10-05T17:00:00",
        restored="2026-10-05T15:00:00",
        call_seconds_before=60,
    ),
    Opened(3, "2002", "normal", "2026-10-06T22:30:00", responded="2026-10-06T23:30:00"),  # 7 October in Rome
    # an unregistered caller's ticket, opened in the console after the change of clock, never answered
    Opened(4, None, "low", "2026-10-26T10:00:00", channel="console", response_due="2026-10-26T12:00:00"),
    # November in Rome: not in the month
    Opened(5, "1001", "high", "2026-10-31T23:30:00", call_seconds_before=30),
)


@pytest.fixture
def month(app) -> list[Opened]:  # type: ignore[no-untyped-def]
    """October's tickets, their calls, a call that ended without a ticket, and the worker's work."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        customers = {c.code: c for c in session.scalars(select(Customer))}
        for opened in MONTH:
            customer = customers[opened.customer] if opened.customer else None
            contact = customer.contacts[0] if customer is not None else None
            call_sid = f"CA{opened.serial:032d}" if opened.call_seconds_before is not None else None
            ticket = Ticket(
                number=opened.number,
                urgency=opened.urgency,
                status="triage",
                channel=opened.channel,
                customer=customer,
                contact=contact,
                caller=contact.phone if contact is not None else STRANGER,
                needs_match=contact is None,
                call_sid=call_sid,
                created_at=utc(opened.created),
                response_due_at=utc(opened.response_due) if opened.response_due else None,
                first_response_at=utc(opened.responded) if opened.responded else None,
                restore_due_at=utc(opened.restore_due) if opened.restore_due else None,
                restored_at=utc(opened.restored) if opened.restored else None,
            )
            session.add(ticket)
            session.flush()
            if call_sid is not None:
                assert opened.call_seconds_before is not None
                session.add(
                    Call(
                        call_sid=call_sid,
                        caller=ticket.caller,
                        customer_id=customer.id if customer is not None else None,
                        ticket_id=ticket.id,
                        call_status="completed",
                        started_at=ticket.created_at - timedelta(seconds=opened.call_seconds_before),
                        ended_at=ticket.created_at + timedelta(minutes=2),
                        forwarded_at=ticket.created_at if opened.urgency == "critical" else None,
                    )
                )
        session.add(  # hung up in the menu
            Call(
                call_sid="CA" + "9" * 32,
                caller=STRANGER,
                call_status="completed",
                started_at=utc("2026-10-12T09:00:00"),
                ended_at=utc("2026-10-12T09:01:00"),
            )
        )
        session.add(  # asked where a request stands, and heard it
            Call(
                call_sid="CA" + "8" * 32,
                caller=customers["1001"].contacts[0].phone,
                customer_id=customers["1001"].id,
                call_status="completed",
                started_at=utc("2026-10-13T09:00:00"),
                ended_at=utc("2026-10-13T09:02:00"),
                status_heard_at=utc("2026-10-13T09:01:00"),
            )
        )
        session.add(PendingWork(key="follow_up:waiting", kind="follow_up"))
        session.add(PendingWork(key="follow_up:failed", kind="follow_up", failed_at=utcnow()))
    return list(MONTH)


@pytest.fixture
def dispatcher(app, client):  # type: ignore[no-untyped-def]
    user = add_user(app, "Dora Dispatcher")
    sign_in(client, user)
    return user


# -- reading the page ------------------------------------------------------------------------------


@dataclass
class Cell:
    attrs: dict[str, str]
    text: str = ""
    value: str | None = None  # the <data value> inside
    link: str | None = None


@dataclass
class Row:
    attrs: dict[str, str]
    cells: list[Cell] = field(default_factory=list)

    def by_figure(self, name: str) -> Cell:
        [cell] = [cell for cell in self.cells if cell.attrs.get("data-figure") == name]
        return cell

    def by_series(self, key: str) -> Cell:
        [cell] = [cell for cell in self.cells if cell.attrs.get("data-series") == key]
        return cell


class StatsPage(HTMLParser):
    """The page as a reader takes it in: its tables by id, the form's values, the messages beside fields, the SVGs."""

    def __init__(self, html: str):
        super().__init__()
        self.html = html
        self.tables: dict[str, list[Row]] = {}
        self.inputs: dict[str, str] = {}
        self.selected: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self._table: str | None = None
        self._cell: Cell | None = None
        self._error: str | None = None
        self._select: str | None = None
        self.feed(html)
        self.svgs = {
            root.get("id", ""): root
            for root in (ElementTree.fromstring(found) for found in re.findall(r"<svg\b.*?</svg>", html, re.S))
        }

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = {name: value or "" for name, value in attrs}
        if tag == "table" and "id" in given:
            self._table = given["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append(Row(given))
        elif tag in ("td", "th") and self._table is not None and self.tables[self._table]:
            self._cell = Cell(given)
            self.tables[self._table][-1].cells.append(self._cell)
        elif tag == "data" and self._cell is not None:
            self._cell.value = given["value"]
        elif tag == "a":
            if self._cell is not None:
                self._cell.link = given.get("href")
            if "id" in given:
                self.links[given["id"]] = given.get("href", "")
        elif tag == "input" and "name" in given:
            self.inputs[given["name"]] = given.get("value", "")
        elif tag == "select":
            self._select = given.get("name")
        elif tag == "option" and self._select and "selected" in given:
            self.selected[self._select] = given.get("value", "")
        elif tag == "span" and "field-error" in given.get("class", ""):
            self._error = given["id"]
            self.errors[self._error] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self._cell.text = " ".join(self._cell.text.split())
            self._cell = None
        elif tag == "span":
            self._error = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.text += data
        if self._error is not None:
            self.errors[self._error] += data

    def rows(self, table: str) -> list[Row]:
        """The table's body rows (a row with a header cell only in its head is left out)."""
        return [row for row in self.tables[table] if not all(cell.attrs.get("scope") == "col" for cell in row.cells)]

    # -- the figures, keyed as the JSON keys them

    def tickets_per_day(self) -> dict[tuple[str, str, str], int]:
        """{(dd/mm, channel, urgency): tickets} of the days' table, without the empty cells."""
        found = {}
        for row in self.rows("stats-tickets-table"):
            for cell in row.cells:
                key = cell.attrs.get("data-series")
                if key and key != "total" and cell.value != "0":
                    channel, urgency = key.split("/")
                    found[(row.attrs["data-day"], channel, urgency)] = int(cell.value or "")
        return found

    def durations(self, table: str) -> dict[tuple[str, str], tuple[int, float | None, float | None]]:
        found = {}
        for row in self.rows(table):
            if "data-urgency" not in row.attrs:
                continue
            median, p90 = (row.by_figure(name).value for name in ("median", "p90"))
            found[(row.attrs["data-urgency"], row.attrs["data-level"])] = (
                int(row.by_figure("count").value or ""),
                float(median) if median is not None else None,
                float(p90) if p90 is not None else None,
            )
        return found

    def breaches(self) -> list[tuple[str, str, str | None]]:
        """(number, clock, link) of each breach, in the page's order."""
        return [
            (row.attrs["data-ticket"], row.attrs["data-clock"], row.cells[0].link)
            for row in self.rows("stats-breaches-table")
            if "data-ticket" in row.attrs
        ]

    def figure(self, table: str, name: str) -> float | None:
        [row] = [row for row in self.rows(table) if row.attrs.get("data-figure") == name]
        value = row.cells[-1].value
        return float(value) if value is not None else None

    def series(self, chart: str) -> dict[str, list[ElementTree.Element]]:
        """{data-series: its bars} of the chart's SVG."""
        return {
            group.get("data-series", ""): group.findall(f"{SVG}rect")
            for group in self.svgs[chart].iter(f"{SVG}g")
            if group.get("data-series") is not None
        }


def page(client, **query: str) -> StatsPage:  # type: ignore[no-untyped-def]
    response = client.get("/console/stats", query_string=query)
    assert response.status_code == 200, response.status_code
    return StatsPage(response.get_data(as_text=True))


def api(client, **query: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = client.get("/api/stats", query_string=query, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def csv_rows(client, **query: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    response = client.get("/console/stats.csv", query_string=query)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def day_label(day: str) -> str:
    return date.fromisoformat(day).strftime("%d/%m")


def optional(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


# -- the CSV and JSON agree with the page ----------------------------------------------------------


def test_the_csv_and_json_agree_with_the_page(client, dispatcher, month):
    shown = page(client, **OCTOBER)
    data = api(client, **OCTOBER)
    rows = csv_rows(client, **OCTOBER)
    section = lambda name: [row for row in rows if row["section"] == name]  # noqa: E731

    # Tickets per day, by channel and urgency.
    from_json = {(day_label(d["day"]), d["channel"], d["urgency"]): d["tickets"] for d in data["tickets_per_day"]}
    from_csv = {(day_label(r["day"]), r["channel"], r["urgency"]): int(r["value"]) for r in section("tickets_per_day")}
    assert shown.tickets_per_day() == from_json == from_csv
    assert from_json == {  # counted on Rome's days: the ticket of 30 September 22:30 UTC is the 1st's
        ("01/10", "phone", "normal"): 1,
        ("05/10", "phone", "critical"): 1,
        ("05/10", "phone", "high"): 1,
        ("07/10", "phone", "normal"): 1,
        ("26/10", "console", "low"): 1,
    }
    totals = {row.attrs["data-day"]: row.by_series("total").value for row in shown.rows("stats-tickets-table")}
    assert len(totals) == 31 and totals["05/10"] == "2" and totals["02/10"] == "0"  # every day of the month

    # Times to first response and to restore, by urgency and level.
    for clock, table in (("first_response", "stats-response-table"), ("restore", "stats-restore-table")):
        from_json_times = {
            (d["urgency"], d["level"]): (d["count"], d["median_minutes"], d["p90_minutes"]) for d in data[clock]
        }
        from_csv_times = {
            (r["urgency"], r["level"]): (int(r["count"]), optional(r["median_minutes"]), optional(r["p90_minutes"]))
            for r in section(clock)
        }
        assert shown.durations(table) == from_json_times == from_csv_times, clock
    approx = pytest.approx
    assert shown.durations("stats-response-table")[("critical", "premium")] == (1, approx(10), approx(10))
    assert shown.durations("stats-restore-table")[("high", "premium")] == (1, approx(360), approx(360))
    assert shown.durations("stats-response-table")[("normal", "base")] == (2, approx(45), approx(57))  # interpolated

    # The breaches, each linking to its ticket.
    breaches = shown.breaches()
    assert [(number, clock) for number, clock, _ in breaches] == [(b["number"], b["clock"]) for b in data["breaches"]]
    assert [(r["number"], r["clock"]) for r in section("breaches")] == [
        (b["number"], b["clock"]) for b in data["breaches"]
    ]
    assert {(number, clock) for number, clock, _ in breaches} == {
        (MONTH[1].number, "restore"),
        (MONTH[2].number, "response"),
        (MONTH[4].number, "response"),
    }
    assert all(link == f"/console/tickets/{number}" for number, _, link in breaches)

    # The calls, the caller's wait for the ticket number, the worker's backlog.
    figures = {r["figure"]: r["value"] for r in section("figures")}
    for name in ("answered", "abandoned", "forwarded", "status_answered"):
        assert shown.figure("stats-calls-table", name) == data["calls"][name] == int(figures[f"calls_{name}"]), name
    assert data["calls"] == {"answered": 5, "abandoned": 2, "forwarded": 1, "status_answered": 1}
    for name, key in (
        ("count", "to_ticket_number_count"),
        ("median", "to_ticket_number_median_seconds"),
        ("p90", "to_ticket_number_p90_seconds"),
    ):
        assert shown.figure("stats-to-number-table", name) == data[key] == optional(figures[key]), name
    assert data["to_ticket_number_count"] == 3 and data["to_ticket_number_median_seconds"] == pytest.approx(60)
    for name in ("transcription_backlog", "failed_jobs"):
        assert shown.figure("stats-worker-table", name) == data[name] == int(figures[name]) == 1, name


def test_the_charts_are_svg_with_a_series_per_channel_and_urgency_and_a_bar_per_figure(client, dispatcher, month):
    shown = page(client, **OCTOBER)
    assert set(shown.svgs) == {"stats-tickets-chart", "stats-response-chart", "stats-restore-chart"}

    tickets = shown.series("stats-tickets-chart")
    assert list(tickets) == ["phone/critical", "phone/high", "phone/normal", "console/low"]  # phone first, urgent first
    assert {key: len(bars) for key, bars in tickets.items()} == {
        "phone/critical": 1,
        "phone/high": 1,
        "phone/normal": 2,
        "console/low": 1,
    }
    svg = shown.svgs["stats-tickets-chart"]
    assert (svg.findtext(f"{SVG}title") or "").startswith("Richieste aperte al giorno")
    assert svg.get("role") == "img" and svg.find(f"{SVG}desc") is not None
    [bar] = tickets["phone/critical"]
    assert bar.findtext(f"{SVG}title") == "telefono · critica, 05/10: 1" and bar.get("data-value") == "1"
    legend = [item.get("data-legend") for item in svg.iter(f"{SVG}g") if item.get("data-legend")]
    assert legend == list(tickets)
    categories = [text.text for text in svg.iter(f"{SVG}text") if text.get("class") == "category"]
    assert len(categories) == 31 and categories[0] == "01/10"
    assert [text.text for text in svg.iter(f"{SVG}text") if text.get("class") == "tick"][0] == "0"
    # Series told apart by more than hue: no two series share a fill, and some are patterned.
    fills = [group[0].get("fill") for group in tickets.values()]
    assert len(set(fills)) == len(fills) and any((fill or "").startswith("url(#") for fill in fills)

    response = shown.series("stats-response-chart")
    rows = shown.durations("stats-response-table")
    assert list(response) == ["median", "p90"]
    measured = [median for _, median, _ in rows.values() if median is not None]  # a level with no answer yet: no bar
    assert len(response["median"]) == len(response["p90"]) == len(measured) == 3
    assert sorted(float(bar.get("data-value", "")) for bar in response["median"]) == sorted(measured)
    restore = shown.series("stats-restore-chart")
    restored = [median for _, median, _ in shown.durations("stats-restore-table").values() if median is not None]
    assert len(restore["median"]) == len(restored) == 2


def test_a_customer_sees_only_its_own_tickets_and_calls(client, dispatcher, month):
    shown = page(client, customer="1001", **OCTOBER)
    data = api(client, customer="1001", **OCTOBER)
    assert shown.selected["customer"] == "1001"
    assert shown.tickets_per_day() == {("05/10", "phone", "critical"): 1, ("05/10", "phone", "high"): 1}
    assert data["customer_code"] == "1001" and data["calls"]["answered"] == 3
    assert shown.figure("stats-calls-table", "answered") == 3
    assert {number for number, _, _ in shown.breaches()} == {MONTH[1].number, MONTH[2].number}
    assert "customer=1001" in shown.links["stats-csv"]


def test_the_page_is_a_link_to_share_and_the_csv_is_named_for_its_period(client, dispatcher, month):
    shown = page(client, customer="1001", **OCTOBER)
    assert (shown.inputs["from"], shown.inputs["to"]) == ("2026-10-01", "2026-10-31")
    link = shown.links["stats-csv"]
    assert link.startswith("/console/stats.csv?")
    response = client.get(link)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="stats_2026-10-01_2026-10-31_1001.csv"'
    assert response.get_data(as_text=True).startswith("section,figure,value")


def test_the_default_period_is_the_current_month_in_rome(client, dispatcher):
    today = utcnow().astimezone(ROME).date()
    shown = page(client)
    first = today.replace(day=1)
    assert shown.inputs["from"] == first.isoformat()
    last = date.fromisoformat(shown.inputs["to"])
    assert (last.year, last.month) == (today.year, today.month) and (last + timedelta(days=1)).day == 1
    assert shown.selected.get("customer", "") == ""
    assert len(shown.rows("stats-tickets-table")) == last.day
    assert shown.breaches() == [] and shown.errors == {}


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"from": "2026-13-01", "to": "2026-10-31"}, "stats-from-error", "Data non valida"),
        ({"from": "2026-10-01", "to": "31/10/2026"}, "stats-to-error", "Data non valida"),
        ({"from": "0001-01-01", "to": "2026-10-31"}, "stats-from-error", "Data non valida"),
        ({"from": "2026-10-31", "to": "2026-10-01"}, "stats-to-error", "La fine viene prima dell'inizio"),
        ({"from": "2024-01-01", "to": "2026-10-01"}, "stats-to-error", "Al massimo 366 giorni"),
        ({"customer": "9999", **OCTOBER}, "stats-customer-error", "Cliente sconosciuto"),
    ],
)
def test_a_bad_field_gets_a_message_beside_it_and_the_page_falls_back(client, dispatcher, month, query, field, message):
    response = client.get("/console/stats", query_string=query)
    assert response.status_code == 400
    shown = StatsPage(response.get_data(as_text=True))
    assert list(shown.errors) == [field] and message in shown.errors[field]
    described = re.search(rf'aria-describedby="{field}"', shown.html)
    assert described is not None, "the field names its message"
    if field == "stats-customer-error":  # the period stands; every customer is shown
        assert shown.inputs["from"] == "2026-10-01" and shown.selected.get("customer", "") == ""
        assert len(shown.tickets_per_day()) == 5
    else:  # the current month is shown, and the form says so
        assert shown.inputs["from"] == utcnow().astimezone(ROME).date().replace(day=1).isoformat()
    assert client.get("/console/stats.csv", query_string=query).status_code == 400


def test_only_a_dispatcher_sees_the_statistics(app, client, month):
    technician = add_user(app, "Luca Tecnico", role="technician")
    dispatcher = add_user(app, "Dora Dispatcher")
    for path in ("/console/stats", "/console/stats.csv"):
        assert client.get(path).status_code == 302  # a stranger is sent to sign in
        assert "/console/login" in client.get(path).headers["Location"]
    sign_in(client, technician)
    assert "/console/stats" not in client.get("/console/").get_data(as_text=True)  # no link in the navigation
    for path in ("/console/stats", "/console/stats.csv"):
        refused = client.get(path, query_string=OCTOBER)
        assert refused.status_code == 403 and "Non consentito" in refused.get_data(as_text=True)
    sign_in(client, dispatcher)
    assert 'href="/console/stats"' in client.get("/console/").get_data(as_text=True)
    assert client.get("/console/stats.csv", query_string=OCTOBER).status_code == 200


def test_the_page_speaks_english_to_an_english_reader(app, client, month):
    sign_in(client, add_user(app, "Emma English", language="en"))
    shown = page(client, **OCTOBER)
    assert "Tickets opened per day" in shown.html and "Download CSV" in shown.html
    [bar] = shown.series("stats-tickets-chart")["phone/critical"]
    assert bar.findtext(f"{SVG}title") == "phone · critical, 05/10: 1"
    assert "Tickets" in (shown.svgs["stats-tickets-chart"].findtext(f"{SVG}title") or "")


def test_every_word_of_the_page_is_in_both_languages():
    italian = {key for key in words("it") if key.startswith("stats_")}
    assert italian and italian == {key for key in words("en") if key.startswith("stats_")}


def test_ticks_are_round_and_cover_the_highest_bar():
    assert charts.ticks(0) == [0, 1]
    assert charts.ticks(3, whole_numbers=True) == [0, 1, 2, 3]
    assert charts.ticks(137) == [0, 50, 100, 150]
    assert charts.ticks(0.4) == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert charts.ticks(7, whole_numbers=True)[-1] >= 7
