"""The queue: open tickets in a dispatcher's order, their deadlines and marks, filters, search, live rows."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from helpdesk import sla
from ivr.console.queue import span_words
from storage.models import Customer, Ticket, User, utcnow
from storage.ticket_numbers import FIRST_SERIAL, ticket_number
from tests.conftest import ANNA, GIULIA, STRANGER, sign_in, with_settings

pytestmark = pytest.mark.usefixtures("directory", "around_the_clock")

_serials = itertools.count(FIRST_SERIAL + 500)


# -- helpers ---------------------------------------------------------------------------------------


@dataclass
class Row:
    """A line of the queue table as the browser shows it."""

    number: str
    marks: list[str]
    classes: list[str]
    cells: list[str] = field(default_factory=list)
    link: str | None = None

    @property
    def left(self) -> str:
        return self.cells[7]


class QueueTable(HTMLParser):
    """The rows of the queue's <tbody>, read from a page or from the rows partial."""

    def __init__(self, html: str):
        super().__init__()
        self.rows: list[Row] = []
        self.summary: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = {name: value or "" for name, value in attrs}
        if tag == "tbody" and given.get("id") == "queue-rows":
            self._in_body = True
            self.summary = given.get("data-summary")
        elif self._in_body and tag == "tr" and "data-ticket" in given:
            self.rows.append(Row(given["data-ticket"], given["data-marks"].split(), given["class"].split()))
        elif self._in_body and tag == "td" and self.rows:
            self._cell = []
        elif self._in_body and tag == "a" and self.rows and self.rows[-1].link is None:
            self.rows[-1].link = given.get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None and self.rows:
            self.rows[-1].cells.append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def numbers(self) -> list[str]:
        return [row.number for row in self.rows]

    def row(self, number: str) -> Row:
        [found] = [row for row in self.rows if row.number == number]
        return found


def add_user(app, name: str, role: str = "dispatcher", language: str = "it") -> User:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session, session.begin():
        email = name.lower().replace(" ", ".") + "@helpdesk.example.it"
        user = User(name=name, email=email, role=role, language=language)
        session.add(user)
        session.flush()
        session.expunge(user)
    return user


def add_ticket(  # type: ignore[no-untyped-def]
    app,
    urgency: str,
    customer: str | None = None,
    *,
    ago: timedelta = timedelta(0),
    phase: str = "triage",
    **fields,
) -> str:
    """A ticket of `customer` (its code; None: an unknown caller) opened `ago`; returns its number."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        number = ticket_number(next(_serials))
        found = session.scalars(select(Customer).where(Customer.code == customer)).one() if customer else None
        contact = found.contacts[0] if found is not None else None
        fields.setdefault("caller", contact.phone if contact is not None else STRANGER)
        fields.setdefault("needs_match", contact is None)
        session.add(
            Ticket(
                number=number,
                urgency=urgency,
                status=phase,
                customer=found,
                contact=contact if not fields["needs_match"] else None,
                created_at=utcnow() - ago,
                **fields,
            )
        )
    return number


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)


# The deadline is counted to the second; time left is shown rounded up to the minute and time
# overdue rounded down: while the test runs, a ticket opened exactly N minutes ago has "X min"
# left, and one opened N minutes and a half ago is "X min" overdue.
HALF_A_MINUTE = timedelta(seconds=30)


@pytest.fixture
def around_the_clock(app, tmp_path):  # type: ignore[no-untyped-def]
    """Every level counts every minute: these tests are about the queue's order and words, whenever they run
    (tests/test_sla_clock.py counts business hours and holidays)."""
    table = tmp_path / "sla.toml"
    table.write_text(sla.DEFAULT_TABLE.read_text(encoding="utf-8").replace('"business_hours"', '"around_the_clock"'))
    with_settings(app, sla_table=table)


@pytest.fixture
def dispatcher(app, client) -> User:  # type: ignore[no-untyped-def]
    user = add_user(app, "Dora Dispatcher")
    sign_in(client, user)
    return user


def queue(client, **params) -> QueueTable:  # type: ignore[no-untyped-def]
    response = client.get("/console/", query_string=params)
    assert response.status_code == 200
    return QueueTable(response.get_data(as_text=True))


# -- login -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/console/", "/console/queue/rows", "/console/queue/rows?q=1001"])
def test_the_queue_and_its_rows_need_a_signed_in_user(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login")


def test_a_session_of_a_signed_out_user_no_longer_opens_the_queue(app, client):
    user = add_user(app, "Old Session")
    sign_in(client, user)
    with app.config["SESSIONMAKER"]() as session, session.begin():
        session.get(User, user.id).session_version += 1  # type: ignore[union-attr]
    assert client.get("/console/queue/rows").status_code == 302


def test_a_technician_sees_the_queue_too(app, client):
    add_ticket(app, "high", "1001")
    sign_in(client, add_user(app, "Tina Tecnica", role="technician"))
    assert len(queue(client).rows) == 1


# -- order and deadlines ---------------------------------------------------------------------------


def test_the_most_urgent_first_then_the_least_time_left_and_the_answered_after_the_waiting(app, client, dispatcher):
    # premium: critical 15 min, high 30, normal 120;
    # base (Studio Verdi and the unregistered): critical 60, high 120, low 1440
    overdue_critical = add_ticket(app, "critical", "1001", ago=minutes(20) + HALF_A_MINUTE)  # 5 min overdue
    critical_soon = add_ticket(app, "critical", "1001", ago=minutes(5))  # 10 min left
    critical_base = add_ticket(app, "critical", "2002", ago=minutes(20))  # 40 min left
    answered = add_ticket(app, "critical", "1001", ago=minutes(30), first_response_at=utcnow() - minutes(25))
    overdue_high = add_ticket(app, "high", "2002", ago=minutes(130) + HALF_A_MINUTE)  # 10 min overdue
    normal = add_ticket(app, "normal", "1001", ago=minutes(55))  # 1 h 5 min left
    low_unregistered = add_ticket(app, "low")  # a whole day left
    add_ticket(app, "critical", "1001", phase="resolved", ago=minutes(60))  # not open: not in the queue
    add_ticket(app, "critical", "1001", phase="closed", ago=minutes(60))

    table = queue(client)

    assert table.numbers() == [
        overdue_critical,
        critical_soon,
        critical_base,
        answered,
        overdue_high,
        normal,
        low_unregistered,
    ]
    assert table.row(overdue_critical).left == "SLA superato in ritardo di 5 min"
    assert table.row(critical_soon).left == "10 min"
    assert table.row(critical_base).left == "40 min"
    assert table.row(answered).left == "risposta data, ripristino: 3 h 30 min"  # premium, critical: 240 minutes
    assert table.row(overdue_high).left == "SLA superato in ritardo di 10 min"
    assert table.row(normal).left == "1 h 5 min"
    assert table.row(low_unregistered).left == "1 g"
    assert table.summary == "Richieste aperte: 7"


def test_breached_tickets_are_marked_and_answered_ones_never_are(app, client, dispatcher):
    breached = add_ticket(app, "high", "1001", ago=minutes(45))
    in_time = add_ticket(app, "high", "1001", ago=minutes(10))
    answered_late = add_ticket(app, "high", "1001", ago=minutes(45), first_response_at=utcnow())

    table = queue(client)

    assert "breached" in table.row(breached).classes
    assert table.row(breached).left.startswith("SLA superato")
    assert "breached" not in table.row(in_time).classes
    assert "breached" not in table.row(answered_late).classes
    assert "answered" in table.row(answered_late).classes


def test_an_unmatched_caller_is_held_to_the_lowest_level_even_with_a_typed_customer_code(app, client, dispatcher):
    # Officine Brambilla is premium (critical: 15 min), but a typed code is a claim: base (60 min)
    claimed = add_ticket(app, "critical", "1001", needs_match=True, caller=None, ago=minutes(20))
    assert queue(client).row(claimed).left == "40 min"


def test_the_opening_time_is_shown_in_the_help_desks_time_zone(app, client, dispatcher):
    number = add_ticket(app, "normal", "1001", ago=minutes(3))
    with app.config["SESSIONMAKER"]() as session:
        opened = session.scalars(select(Ticket.created_at).where(Ticket.number == number)).one()
    assert queue(client).row(number).cells[6] == opened.astimezone(ZoneInfo("Europe/Rome")).strftime("%d/%m/%Y %H:%M")


@pytest.mark.parametrize(
    ("span", "italian", "english"),
    [
        (timedelta(seconds=20), "1 min", "1 min"),
        (minutes(12), "12 min", "12 min"),
        (minutes(125), "2 h 5 min", "2 h 5 min"),
        (minutes(120), "2 h", "2 h"),
        (minutes(24 * 60 + 185), "1 g 3 h", "1 d 3 h"),
        (-minutes(7), "7 min", "7 min"),  # overdue: rounded down
        (-minutes(7.9), "7 min", "7 min"),
        (-timedelta(seconds=20), "1 min", "1 min"),  # but never "0 min"
    ],
)
def test_a_span_is_said_in_its_two_largest_units(app, span, italian, english):
    from types import SimpleNamespace
    from unittest import mock

    with app.test_request_context():
        for language, expected in (("it", italian), ("en", english)):
            with mock.patch("ivr.console.i18n.current_user", SimpleNamespace(language=language)):
                assert span_words(span) == expected


# -- marks -----------------------------------------------------------------------------------------


def test_voicemail_unregistered_callers_and_typed_callback_numbers_are_marked(app, client, dispatcher):
    plain = add_ticket(app, "normal", "1001")
    voicemail = add_ticket(app, "normal", "1001", voicemail=True)
    unregistered = add_ticket(app, "normal")
    withheld = add_ticket(app, "normal", caller=None, callback_number="+390399998877")

    table = queue(client)

    assert table.row(plain).marks == []
    assert table.row(voicemail).marks == ["voicemail"]
    assert table.row(unregistered).marks == ["unregistered"]
    assert table.row(withheld).marks == ["unregistered", "callback"]
    assert "segreteria" in table.row(voicemail).cells[0]
    assert table.row(unregistered).cells[3] == "non registrato"
    assert table.row(plain).cells[3] == "Officine Brambilla"
    assert table.row(plain).cells[4] == f"Giulia Rossi {GIULIA}"
    assert table.row(withheld).cells[4] == "numero nascosto da richiamare al +390399998877"


def test_each_number_links_to_its_ticket(app, client, dispatcher):
    number = add_ticket(app, "normal", "1001")
    assert queue(client).row(number).link == f"/console/tickets/{number}"


# -- filters and search ----------------------------------------------------------------------------


@pytest.fixture
def mixed(app):  # type: ignore[no-untyped-def]
    """Tickets across phases, urgencies, customers and technicians."""
    tina = add_user(app, "Tina Tecnica", role="technician")
    theo = add_user(app, "Theo Tecnico", role="technician")
    return {
        "tina": tina,
        "theo": theo,
        "received": add_ticket(app, "critical", "1001", phase="received", technician_id=tina.id),
        "triage": add_ticket(app, "high", "2002", phase="triage", technician_id=theo.id),
        "diagnostics": add_ticket(app, "normal", "1001", phase="diagnostics"),
        "withheld": add_ticket(app, "low", phase="received", caller=None, callback_number="+390399998877"),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"phase": "received"}, ["received", "withheld"]),
        ({"phase": "diagnostics"}, ["diagnostics"]),
        ({"urgency": "high"}, ["triage"]),
        ({"customer": "1001"}, ["received", "diagnostics"]),
        ({"customer": "2002", "urgency": "critical"}, []),
        ({"technician": "none"}, ["diagnostics", "withheld"]),
        # unknown values are left out: the whole queue
        (
            {"phase": "closed", "urgency": "dreadful", "technician": "x"},
            ["received", "triage", "diagnostics", "withheld"],
        ),
    ],
)
def test_filters_narrow_the_queue(app, client, dispatcher, mixed, params, expected):
    assert queue(client, **params).numbers() == [mixed[name] for name in expected]


def test_the_technician_filter_and_mine(app, client, mixed):
    sign_in(client, mixed["tina"])
    assert queue(client, technician=str(mixed["theo"].id)).numbers() == [mixed["triage"]]
    assert queue(client, mine="1").numbers() == [mixed["received"]]
    assert queue(client, mine="1", technician=str(mixed["theo"].id)).numbers() == [mixed["received"]]  # mine wins


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("by number", ["triage"]),
        ("039 2301122", ["received", "diagnostics"]),  # Giulia's number as people write it
        (ANNA, ["triage"]),
        ("0399998877", ["withheld"]),  # the typed callback number
        ("brambilla", ["received", "diagnostics"]),  # part of the customer's name, any case
        ("2002", ["triage"]),  # the customer's code
        ("nobody at all", []),
        ("100%", []),  # LIKE's wildcards are taken as they are
    ],
)
def test_search_finds_tickets_by_number_phone_or_customer(client, dispatcher, mixed, search, expected):
    if search == "by number":
        search = mixed["triage"][:3] + " " + mixed["triage"][3:]  # as it is read out, in groups
    assert queue(client, q=search).numbers() == [mixed[name] for name in expected]


def test_the_filter_form_keeps_what_was_chosen(app, client, dispatcher, mixed):
    page = client.get("/console/", query_string={"phase": "received", "q": "brambilla", "mine": "1"}).get_data(
        as_text=True
    )
    assert '<option value="received" selected>' in page
    assert 'name="q" value="brambilla"' in page
    assert 'name="mine" value="1" checked' in page
    assert 'data-rows-url="/console/queue/rows?' in page
    assert '<a href="/console/?' in page  # "refresh", with the same filters: the page works without JavaScript


# -- the rows partial and live updates -------------------------------------------------------------


def test_the_rows_partial_is_the_table_body_alone_with_the_same_filters(app, client, dispatcher, mixed):
    response = client.get("/console/queue/rows", query_string={"customer": "1001"})

    assert response.status_code == 200
    body = response.get_data(as_text=True).strip()
    assert body.startswith("<tbody") and body.endswith("</tbody>")
    table = QueueTable(body)
    assert table.numbers() == [mixed["received"], mixed["diagnostics"]]
    assert table.summary == "Richieste aperte: 2"


def test_a_ticket_opened_by_a_call_appears_in_the_rows_the_page_polls(app, client, caller, dispatcher):
    page = client.get("/console/").get_data(as_text=True)
    assert QueueTable(page).rows == []
    assert "queue.js" in page
    assert client.get("/console/static/queue.js").status_code == 200

    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")

    [row] = QueueTable(client.get("/console/queue/rows").get_data(as_text=True)).rows
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.call_sid == call.call_sid)).one()
    assert row.number == ticket.number
    assert row.cells[1] == "critica"  # everything stopped, premium
    assert row.left == "15 min"


def test_the_rows_take_one_query_however_many_tickets(app, client, dispatcher):
    engine = app.config["ENGINE"]
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    add_ticket(app, "high", "1001", technician_id=dispatcher.id)
    event.listen(engine, "before_cursor_execute", count)
    try:
        client.get("/console/queue/rows")
        with_one = len(statements)
        for urgency, customer in [("low", "2002"), ("normal", None), ("critical", "1001"), ("high", "2002")]:
            add_ticket(app, urgency, customer, technician_id=dispatcher.id, voicemail=True)
        statements.clear()
        assert len(QueueTable(client.get("/console/queue/rows").get_data(as_text=True)).rows) == 5
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == with_one
    assert sum("FROM tickets" in statement for statement in statements) == 1


# -- languages -------------------------------------------------------------------------------------


def test_a_user_who_reads_english_sees_the_queue_in_english(app, client):
    overdue = add_ticket(app, "critical", "1001", ago=minutes(20) + HALF_A_MINUTE, voicemail=True)
    unregistered = add_ticket(app, "low")
    sign_in(client, add_user(app, "Emma English", language="en"))

    page = client.get("/console/").get_data(as_text=True)
    table = QueueTable(page)

    assert "Open tickets: 2" in page and "Time to respond" in page and "Only mine" in page
    assert table.row(overdue).left == "SLA breached 5 min overdue"
    assert table.row(overdue).cells[1] == "critical"
    assert table.row(overdue).cells[2] == "triage"
    assert "voicemail" in table.row(overdue).cells[0]
    assert table.row(unregistered).cells[3] == "unregistered"
    assert table.row(unregistered).left == "1 d"
    rows = QueueTable(client.get("/console/queue/rows").get_data(as_text=True))
    assert rows.summary == "Open tickets: 2"


def test_an_italian_user_sees_italian(app, client, dispatcher):
    add_ticket(app, "high", "1001", phase="diagnostics")
    page = client.get("/console/").get_data(as_text=True)
    assert "Richieste aperte: 1" in page and "Tempo per rispondere" in page
    assert QueueTable(page).rows[0].cells[1:3] == ["alta", "diagnosi"]


def test_an_empty_queue_says_so_and_says_when_the_filters_are_why(client, dispatcher):
    assert "Nessuna richiesta aperta." in client.get("/console/").get_data(as_text=True)
    rows = client.get("/console/queue/rows", query_string={"urgency": "low"}).get_data(as_text=True)
    assert "Nessuna richiesta aperta con questi filtri." in rows
