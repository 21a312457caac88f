"""A period's statistics (storage.stats), counted by hand from a known set of tickets and calls, on both databases;
the API that serves them; and the call flow that stores what calls did (forwarded, told a ticket's status)."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import astuple
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from storage.db import upgrade
from storage.models import Call, Customer, PendingWork, Ticket
from storage.stats import (
    Breach,
    CallFigures,
    DayCount,
    Durations,
    Statistics,
    UnknownCustomer,
    as_csv,
    as_dict,
    period,
    statistics,
)
from tests.conftest import API_TOKEN, GIULIA, Caller, private_postgresql_schema, ticket_of

MARCO = "+393331234567"  # Giulia's colleague at Officine Brambilla, without tickets of his own

pytestmark = pytest.mark.usefixtures("directory")

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
D = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday: the period is D to D + 3 days
START, END = D, D + timedelta(days=3)
NOW = D + timedelta(days=2, hours=21)  # breaches as of the evening of the third day


def at(days: int, hours: float) -> datetime:
    return D + timedelta(days=days, hours=hours)


def minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


# number: (created, channel, urgency, customer code, needs_match, first response after, restored after,
#          response due after, restore due after), in minutes from the opening.
TICKETS = {
    "101": (at(0, 9), "phone", "high", "1001", False, 10, 120, 30, 240),
    "102": (at(0, 10), "phone", "high", "1001", False, 50, 300, 30, 240),  # answered late, restored late
    "103": (at(1, 8), "email", "high", "1001", False, 20, None, 30, 240),  # never restored: restore breached
    "104": (at(1, 9.5), "phone", "normal", "2002", False, 70, 600, 120, 1440),
    "105": (at(1, 11), "phone", "normal", "2002", False, 30, None, 120, 1440),  # restore due D+2 11:00, unmet
    "106": (at(2, 14), "phone", "normal", None, True, None, None, 120, 1440),  # an unmatched caller
    "107": (at(2, 15), "phone", "critical", "3003", False, 5, 60, 15, 240),  # business level
    "108": (at(2, 23.5), "phone", "low", "1001", True, 200, None, None, None),  # typed code only: base; no deadlines
    "112": (at(2, 20), "phone", "high", "2002", False, None, None, 120, 1440),  # due after NOW: not (yet) a breach
    "109": (at(-1, 12), "phone", "high", "1001", False, 10, 20, 30, 240),  # before the period
    "110": (at(3, 0), "phone", "high", "1001", False, 10, 20, 30, 240),  # at its end: not in it
}
# sid: (started, status, ticket number, customer code, forwarded, heard a status)
CALLS = {
    "CA1": (at(0, 9) - timedelta(seconds=90), "completed", "101", "1001", False, False),
    "CA2": (at(0, 10) - timedelta(seconds=180), "completed", "102", "1001", True, False),  # dialled, then a message
    "CA4": (at(1, 9.5) - timedelta(seconds=120), "completed", "104", "2002", False, False),
    "CA6": (at(2, 14) - timedelta(seconds=300), "completed", "106", None, False, False),
    "CA20": (at(0, 12), "completed", None, None, False, False),  # hung up in the menu
    "CA21": (at(1, 12), "busy", None, "2002", False, False),
    "CA22": (at(1, 13), "completed", None, "1001", True, False),  # the technician answered
    "CA23": (at(2, 13), "completed", None, "2002", False, True),  # heard a ticket's status
    "CA24": (at(2, 20), "in-progress", None, None, False, False),  # still on the line
    "CA9": (at(-1, 12), "completed", None, "1001", True, True),  # before the period
}


def fill(session: Session) -> None:
    """The tickets, calls and outbox work above (customers 1001 premium and 2002 base come from the directory)."""
    session.add(Customer(code="3003", name="Rete Nord", sla="business"))
    session.flush()
    customers = {c.code: c for c in session.scalars(select(Customer))}
    tickets = {}
    for number, (
        created,
        channel,
        urgency,
        code,
        unmatched,
        response,
        restore,
        response_due,
        restore_due,
    ) in TICKETS.items():
        sid = next((sid for sid, row in CALLS.items() if row[2] == number), None)
        ticket = Ticket(
            number=number,
            channel=channel,
            urgency=urgency,
            customer=customers[code] if code else None,
            needs_match=unmatched,
            call_sid=sid,
            created_at=created,
            first_response_at=created + minutes(response) if response is not None else None,
            restored_at=created + minutes(restore) if restore is not None else None,
            response_due_at=created + minutes(response_due) if response_due is not None else None,
            restore_due_at=created + minutes(restore_due) if restore_due is not None else None,
        )
        session.add(ticket)
        tickets[number] = ticket
    session.flush()
    for sid, (started, status, number, code, forwarded, heard) in CALLS.items():
        session.add(
            Call(
                call_sid=sid,
                caller="+390200000000",
                started_at=started,
                call_status=status,
                ticket_id=tickets[number].id if number else None,
                customer_id=customers[code].id if code else None,
                forwarded_at=started + timedelta(seconds=30) if forwarded else None,
                status_heard_at=started + timedelta(seconds=40) if heard else None,
            )
        )
    done, failed = at(0, 1), at(0, 2)
    for key, kind, done_at, failed_at in (
        ("w1", "follow_up", done, None),
        ("w2", "follow_up", None, None),  # backlog
        ("w3", "voice_message", None, None),  # backlog
        ("w4", "email", None, None),  # not a transcription
        ("w5", "follow_up", None, failed),  # failed
        ("w6", "email", None, failed),  # failed
        ("w7", "voice_message", done, None),
    ):
        session.add(PendingWork(key=key, kind=kind, version=0, done_at=done_at, failed_at=failed_at))


EXPECTED_DAYS = [
    DayCount(date(2026, 11, 2), "phone", "high", 2),
    DayCount(date(2026, 11, 3), "email", "high", 1),
    DayCount(date(2026, 11, 3), "phone", "normal", 2),
    DayCount(date(2026, 11, 4), "phone", "critical", 1),
    DayCount(date(2026, 11, 4), "phone", "high", 1),
    DayCount(date(2026, 11, 4), "phone", "low", 1),
    DayCount(date(2026, 11, 4), "phone", "normal", 1),
]
# By hand: percentile_cont's rank 1 + p(n - 1), interpolated between the two nearest values.
EXPECTED_FIRST_RESPONSE = [
    Durations("low", "base", 1, 200.0, 200.0),  # 108: matched by a typed code only
    Durations("normal", "base", 2, 50.0, 66.0),  # 30, 70 (106 unanswered): 30 + .5 * 40, 30 + .9 * 40
    Durations("high", "base", 0, None, None),  # 112: no answer yet
    Durations("high", "premium", 3, 20.0, 44.0),  # 10, 20, 50: the middle; 20 + .8 * 30
    Durations("critical", "business", 1, 5.0, 5.0),
]
EXPECTED_RESTORE = [
    Durations("low", "base", 0, None, None),
    Durations("normal", "base", 1, 600.0, 600.0),
    Durations("high", "base", 0, None, None),
    Durations("high", "premium", 2, 210.0, 282.0),  # 120, 300: 120 + .5 * 180, 120 + .9 * 180
    Durations("critical", "business", 1, 60.0, 60.0),
]
EXPECTED_BREACHES = [
    Breach("102", "Officine Brambilla", "high", "premium", "response", at(0, 10.5), at(0, 10) + minutes(50)),
    Breach("102", "Officine Brambilla", "high", "premium", "restore", at(0, 14), at(0, 15)),
    Breach("103", "Officine Brambilla", "high", "premium", "restore", at(1, 12), None),
    Breach("105", "Studio Verdi", "normal", "base", "restore", at(2, 11), None),
    Breach("106", None, "normal", "base", "response", at(2, 16), None),
]
EXPECTED = Statistics(
    start=START,
    end=END,
    customer_code=None,
    tickets_per_day=EXPECTED_DAYS,
    first_response=EXPECTED_FIRST_RESPONSE,
    restore=EXPECTED_RESTORE,
    breaches=EXPECTED_BREACHES,
    # 9 calls in the period; ended without a ticket: CA20-23 (CA24 is still on); CA2 and CA22 dialled; CA23 heard.
    calls=CallFigures(answered=9, abandoned=4, forwarded=2, status_answered=1),
    to_ticket_number_count=4,  # 90, 120, 180, 300 seconds
    to_ticket_number_median_seconds=150.0,  # 120 + .5 * 60
    to_ticket_number_p90_seconds=264.0,  # rank 3.7: 180 + .7 * 120
    transcription_backlog=2,
    failed_jobs=2,
)


def approximately(stats: Statistics) -> Statistics:
    """The figures with floats rounded (SQLite counts minutes from Julian days)."""

    def rounded(value: object) -> object:
        return round(value, 6) if isinstance(value, float) else value

    return Statistics(
        **{
            **stats.__dict__,
            "first_response": [Durations(*map(rounded, astuple(d))) for d in stats.first_response],  # type: ignore[arg-type]
            "restore": [Durations(*map(rounded, astuple(d))) for d in stats.restore],  # type: ignore[arg-type]
            "to_ticket_number_median_seconds": rounded(stats.to_ticket_number_median_seconds),
            "to_ticket_number_p90_seconds": rounded(stats.to_ticket_number_p90_seconds),
        }
    )


@pytest.fixture
def filled(app):  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session, session.begin():
        fill(session)
    return app


def stats_of(app, **options) -> Statistics:  # type: ignore[no-untyped-def]
    with app.config["ENGINE"].connect() as connection:
        return statistics(connection, START, END, now=NOW, **options)


def test_the_figures_are_those_counted_by_hand(filled):
    assert approximately(stats_of(filled)) == EXPECTED


def test_a_customers_figures_are_its_tickets_and_calls_only(filled):
    found = approximately(stats_of(filled, customer_code="1001"))
    assert found.customer_code == "1001"
    assert found.tickets_per_day == [
        DayCount(date(2026, 11, 2), "phone", "high", 2),
        DayCount(date(2026, 11, 3), "email", "high", 1),
        DayCount(date(2026, 11, 4), "phone", "low", 1),
    ]
    assert found.first_response == [EXPECTED_FIRST_RESPONSE[0], EXPECTED_FIRST_RESPONSE[3]]
    assert found.breaches == EXPECTED_BREACHES[:3]
    assert found.calls == CallFigures(answered=3, abandoned=1, forwarded=2, status_answered=0)
    assert (found.to_ticket_number_count, found.to_ticket_number_median_seconds) == (2, 135.0)
    assert found.to_ticket_number_p90_seconds == 171.0  # 90 + .9 * 90
    assert (found.transcription_backlog, found.failed_jobs) == (2, 2)  # the line's, whatever the customer


def test_an_unknown_customer_code_is_refused(filled):
    with pytest.raises(UnknownCustomer):
        stats_of(filled, customer_code="9999")


def test_days_are_counted_in_the_time_zone_asked_for(filled):
    """108 opened at 23:30 UTC on the 4th: in Rome, 00:30 on the 5th."""
    days = stats_of(filled, timezone="Europe/Rome").tickets_per_day
    assert DayCount(date(2026, 11, 5), "phone", "low", 1) in days
    assert DayCount(date(2026, 11, 4), "phone", "low", 1) not in days
    assert sum(d.tickets for d in days) == 9


def test_a_period_of_days_in_rome_crosses_the_change_of_time():
    start, end = period(date(2026, 10, 1), date(2026, 10, 31), "Europe/Rome")
    assert start == datetime(2026, 9, 30, 22, tzinfo=UTC) and end == datetime(2026, 10, 31, 23, tzinfo=UTC)


def test_an_empty_period_has_no_figures(filled):
    with filled.config["ENGINE"].connect() as connection:
        empty = statistics(connection, D - timedelta(days=30), D - timedelta(days=20), now=NOW)
    assert (empty.tickets_per_day, empty.first_response, empty.restore, empty.breaches) == ([], [], [], [])
    assert empty.calls == CallFigures(0, 0, 0, 0)
    assert (empty.to_ticket_number_count, empty.to_ticket_number_median_seconds) == (0, None)


def test_as_dict_and_as_csv_say_what_the_statistics_say(filled):
    found = stats_of(filled)
    data = as_dict(found)
    assert data["start"] == "2026-11-02T00:00:00+00:00" and data["customer_code"] is None
    assert data["tickets_per_day"][0] == {"day": "2026-11-02", "channel": "phone", "urgency": "high", "tickets": 2}  # type: ignore[index]
    assert data["breaches"][0] == {  # type: ignore[index]
        "number": "102",
        "customer": "Officine Brambilla",
        "urgency": "high",
        "level": "premium",
        "clock": "response",
        "due_at": "2026-11-02T10:30:00+00:00",
        "met_at": "2026-11-02T10:50:00+00:00",
    }
    assert data["calls"] == {"answered": 9, "abandoned": 4, "forwarded": 2, "status_answered": 1}
    assert data["transcription_backlog"] == 2 and data["to_ticket_number_count"] == 4

    rows = list(csv.DictReader(io.StringIO(as_csv(found))))
    figures = {row["figure"]: row["value"] for row in rows if row["section"] == "figures"}
    assert figures["start"] == "2026-11-02T00:00:00+00:00" and figures["customer_code"] == ""
    assert (figures["calls_answered"], figures["calls_abandoned"], figures["calls_forwarded"]) == ("9", "4", "2")
    assert figures["calls_status_answered"] == "1" and figures["failed_jobs"] == "2"
    assert float(figures["to_ticket_number_median_seconds"]) == pytest.approx(150.0)
    days = [(r["day"], r["channel"], r["urgency"], int(r["value"])) for r in rows if r["section"] == "tickets_per_day"]
    assert days == [(d.day.isoformat(), d.channel, d.urgency, d.tickets) for d in found.tickets_per_day]
    response = [r for r in rows if r["section"] == "first_response"]
    assert [(r["urgency"], r["level"], int(r["count"])) for r in response] == [
        (d.urgency, d.level, d.count) for d in found.first_response
    ]
    assert response[3]["median_minutes"] != "" and float(response[3]["p90_minutes"]) == pytest.approx(44.0)
    assert response[2]["median_minutes"] == ""  # none yet
    breaches = [r for r in rows if r["section"] == "breaches"]
    assert [(r["number"], r["clock"], r["due_at"], r["met_at"]) for r in breaches] == [
        (b.number, b.clock, b.due_at.isoformat(), b.met_at.isoformat() if b.met_at else "") for b in found.breaches
    ]


# -- SQLite and PostgreSQL agree ----------------------------------------------------------------


@pytest.fixture
def both_databases(tmp_path: Path):  # type: ignore[no-untyped-def]
    with private_postgresql_schema() as postgresql_url:
        engines = []
        for url in (f"sqlite:///{tmp_path / 'agree.db'}", postgresql_url):
            upgrade(url)
            engines.append(create_engine(url))
        yield engines
        for engine in engines:
            engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the two databases are made here
def test_sqlite_and_postgresql_agree_on_random_tickets(both_databases):
    """Many groups of many sizes: the window-function percentiles are PostgreSQL's percentile_cont."""
    chance = random.Random(7)
    levels = {"1": "base", "2": "business", "3": "premium"}
    rows = []
    for i in range(400):
        created = D + timedelta(minutes=chance.randrange(3 * 24 * 60), seconds=chance.randrange(60))
        answered = chance.random() < 0.8
        restored = chance.random() < 0.5
        rows.append(
            {
                "number": f"5{i:05d}",
                "urgency": chance.choice(["low", "normal", "high", "critical"]),
                "channel": chance.choice(["phone", "email"]),
                "customer": chance.choice([None, "1", "2", "3"]),
                "needs_match": chance.random() < 0.1,
                "created_at": created,
                "first_response_at": created + timedelta(seconds=chance.randrange(1, 20_000)) if answered else None,
                "restored_at": created + timedelta(seconds=chance.randrange(1, 200_000)) if restored else None,
                "response_due_at": created + timedelta(minutes=chance.choice([15, 30, 120, 480])),
                "restore_due_at": created + timedelta(minutes=chance.choice([240, 1440, 2880])),
            }
        )
    found = []
    for engine in both_databases:
        with Session(engine) as session, session.begin():
            customers = {}
            for code, level in levels.items():
                customer = Customer(code=code, name=f"Customer {code}", sla=level)
                session.add(customer)
                customers[code] = customer
            for row in rows:
                customer = customers.get(row["customer"]) if row["customer"] else None
                session.add(Ticket(**{**row, "customer": customer}))
        with engine.connect() as connection:
            found.append(statistics(connection, START, END, now=NOW, timezone="Europe/Rome"))
    sqlite, postgresql = found
    assert sum(d.tickets for d in sqlite.tickets_per_day) == 400
    assert len(sqlite.breaches) > 50 and sqlite.breaches == postgresql.breaches
    assert sqlite.tickets_per_day == postgresql.tickets_per_day
    for mine, theirs in ((sqlite.first_response, postgresql.first_response), (sqlite.restore, postgresql.restore)):
        assert [(d.urgency, d.level, d.count) for d in mine] == [(d.urgency, d.level, d.count) for d in theirs]
        assert len(mine) >= 12
        for a, b in zip(mine, theirs, strict=True):
            assert a.median_minutes == pytest.approx(b.median_minutes, abs=1e-6)
            assert a.p90_minutes == pytest.approx(b.p90_minutes, abs=1e-6)


# -- the API ------------------------------------------------------------------------------------


def test_the_statistics_need_the_bearer_token(client):
    assert client.get("/api/stats").status_code == 401
    assert client.get("/api/stats", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_the_api_serves_the_statistics_of_days_in_rome(filled, client):
    answer = client.get("/api/stats?from=2026-11-02&to=2026-11-04", headers=AUTH)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["start"] == "2026-11-01T23:00:00+00:00" and body["end"] == "2026-11-04T23:00:00+00:00"
    # 108, at 23:30 UTC on the 4th, is the 5th in Rome: outside; the rest as counted by hand.
    assert sum(day["tickets"] for day in body["tickets_per_day"]) == 8
    assert body["calls"]["answered"] == 9 and body["transcription_backlog"] == 2
    with filled.config["ENGINE"].connect() as connection:
        start, end = period(date(2026, 11, 2), date(2026, 11, 4), "Europe/Rome")
        direct = statistics(connection, start, end, now=datetime.now(UTC), timezone="Europe/Rome")
    assert body == as_dict(direct)


def test_the_api_filters_by_customer(filled, client):
    body = client.get("/api/stats?from=2026-11-02&to=2026-11-04&customer=2002", headers=AUTH).get_json()
    assert body["customer_code"] == "2002"
    assert {b["number"] for b in body["breaches"]} == {"105", "112"}  # 112's deadlines have passed by now
    assert body["calls"] == {"answered": 3, "abandoned": 2, "forwarded": 0, "status_answered": 1}


@pytest.mark.parametrize(
    "query",
    ["from=2026-13-01", "from=yesterday", "to=2026-11-31", "from=2026-11-05&to=2026-11-01", "from=2026-1-5"],
)
def test_a_bad_day_is_400_and_says_why(filled, client, query):
    answer = client.get(f"/api/stats?{query}", headers=AUTH)
    assert answer.status_code == 400
    assert "YYYY-MM-DD" in answer.get_json()["error"] or "before" in answer.get_json()["error"]


def test_an_unknown_customer_is_400(filled, client):
    answer = client.get("/api/stats?customer=9999", headers=AUTH)
    assert answer.status_code == 400 and "9999" in answer.get_json()["error"]


def test_by_default_the_current_month(filled, client):
    body = client.get("/api/stats", headers=AUTH).get_json()
    rome = ZoneInfo("Europe/Rome")
    start = datetime.fromisoformat(body["start"]).astimezone(rome)
    end = datetime.fromisoformat(body["end"]).astimezone(rome)
    assert (start.day, start.hour, end.day, end.hour) == (1, 0, 1, 0)
    assert start.month == datetime.now(rome).month and start <= datetime.now(UTC) < end


# -- the call flow stores what the statistics count ----------------------------------------------


def stored(app, sid: str) -> Call:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        call = session.scalars(select(Call).where(Call.call_sid == sid)).one()
        session.expunge(call)
        return call


def test_a_call_dialled_to_the_technician_is_forwarded_once(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent()
    assert stored(app, call.call_sid).forwarded_at is None
    assert call.press("0").find("Dial") is not None
    first = stored(app, call.call_sid).forwarded_at
    assert first is not None
    call.dial_ends("completed")
    assert stored(app, call.call_sid).forwarded_at == first
    with app.config["ENGINE"].connect() as connection:
        figures = statistics(connection, first - timedelta(hours=1), first + timedelta(hours=1), now=first).calls
    assert (figures.answered, figures.forwarded, figures.status_answered) == (1, 1, 0)


def test_a_call_told_a_tickets_status_is_counted_once(app, caller):
    ticket_of(app, GIULIA)
    call: Caller = caller(GIULIA)
    call.dial_in(), call.stay_silent()
    mine = call.press("2")  # her open tickets, read out: a read-only webhook
    assert "richiesta aperta" in mine.said()
    heard = stored(app, call.call_sid).status_heard_at
    assert heard is not None
    call.press("2")  # that ticket's full status (a webhook that writes): the first moment stays
    assert stored(app, call.call_sid).status_heard_at == heard
    with app.config["ENGINE"].connect() as connection:
        figures = statistics(connection, heard - timedelta(hours=1), heard + timedelta(hours=1), now=heard).calls
    assert figures.status_answered == 1 and figures.forwarded == 0


def test_a_call_that_reaches_its_status_by_typing_the_number_is_counted(app, caller):
    number = ticket_of(app, GIULIA)
    call: Caller = caller(MARCO)
    call.dial_in(), call.stay_silent()
    call.press("2")  # no tickets of his own: asked for a number
    assert stored(app, call.call_sid).status_heard_at is None
    status = call.press(number + "#")  # a colleague's: read to him
    assert "richiesta" in status.said().lower()
    assert stored(app, call.call_sid).status_heard_at is not None
