"""SLA clocks (issue 11, item 1): each ticket's response and restore deadlines, counted in its level's hours.

`base` and `business` count business hours (mon-fri 09:00-18:00 in Rome, Italian national
holidays closed), `premium` every minute. The deadlines below are worked out by hand, as a
dispatcher would check them on a calendar.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from helpdesk import actions, deadlines, sla, thread
from helpdesk.clock import easter_sunday, italian_holidays
from storage.models import Customer, Ticket, TicketEvent, User, utcnow
from tests import test_console_queue as console_queue
from tests import test_console_ticket as console_ticket
from tests import test_ticket_actions as rules
from tests.conftest import GIULIA, sign_in, with_settings
from tests.test_api_actions import DORA, post
from tests.test_ticket_actions import People, act, open_ticket

pytestmark = pytest.mark.usefixtures("directory")

people = rules.people  # the fixture: a dispatcher (Dora) and technicians

ROME = ZoneInfo("Europe/Rome")
TABLE = sla.load()


def rome(*parts: int) -> datetime:
    """A moment on the help desk's clock."""
    return datetime(*parts, tzinfo=ROME)  # type: ignore[misc]


def minutes(count: int) -> timedelta:
    return timedelta(minutes=count)


# -- the calendar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "easter"),
    [(2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5)), (2027, date(2027, 3, 28))],
)
def test_easter_by_the_anonymous_gregorian_algorithm(year, easter):
    assert easter_sunday(year) == easter
    assert easter + timedelta(days=1) in italian_holidays(year)  # Easter Monday


def test_the_italian_national_holidays():
    assert sorted(italian_holidays(2027)) == [
        date(2027, 1, 1),
        date(2027, 1, 6),
        date(2027, 3, 29),  # Easter Monday
        date(2027, 4, 25),
        date(2027, 5, 1),
        date(2027, 6, 2),
        date(2027, 8, 15),
        date(2027, 11, 1),
        date(2027, 12, 8),
        date(2027, 12, 25),
        date(2027, 12, 26),
    ]


# level, urgency, opened, response due, restore due (response / restore minutes in the comment)
DEADLINES = {
    "a weekend": (
        "base",  # critical: 60 / 1440, business hours
        "critical",
        rome(2026, 11, 27, 17, 30),  # Friday: 30 minutes before closing
        rome(2026, 11, 30, 9, 30),  # Monday: the other 30
        rome(2026, 12, 2, 14, 30),  # 30 + Monday 540 + Tuesday 540 + Wednesday 330
    ),
    "a deadline at closing time": (
        "business",  # critical: 30 / 480
        "critical",
        rome(2026, 11, 27, 17, 30),
        rome(2026, 11, 27, 18, 0),  # Friday at closing, not Monday morning
        rome(2026, 11, 30, 16, 30),  # 30 + Monday 450
    ),
    "8 December": (
        "base",
        "critical",
        rome(2026, 12, 7, 17, 30),  # Monday; Tuesday 8 is the Immaculate Conception
        rome(2026, 12, 9, 9, 30),
        rome(2026, 12, 11, 14, 30),  # 30 + Wednesday 540 + Thursday 540 + Friday 330
    ),
    "Easter Monday 2027 and summer time": (
        "base",  # normal: 480 / 5760
        "normal",
        rome(2027, 3, 26, 17, 0),  # Friday, CET; the clocks go forward on Sunday 28, Monday 29 is Easter Monday
        rome(2027, 3, 30, 16, 0),  # 60 + Tuesday 420, CEST
        rome(2027, 4, 13, 14, 0),  # 60 + ten open days of 540 + Tuesday 13 300
    ),
    "the end of summer time": (
        "base",
        "critical",
        rome(2026, 10, 23, 17, 30),  # Friday, CEST; the clocks go back on Sunday 25
        rome(2026, 10, 26, 9, 30),  # Monday, CET: 08:30 UTC, not 07:30
        rome(2026, 10, 28, 14, 30),
    ),
    "Christmas": (
        "business",  # high: 60 / 960
        "high",
        rome(2026, 12, 24, 17, 30),  # Thursday; 25 and 26 are holidays, then the weekend
        rome(2026, 12, 28, 9, 30),
        rome(2026, 12, 29, 15, 30),  # 30 + Monday 540 + Tuesday 390
    ),
    "premium around the clock": (
        "premium",  # critical: 15 / 240, every minute
        "critical",
        rome(2026, 11, 28, 23, 50),  # Saturday night
        rome(2026, 11, 29, 0, 5),
        rome(2026, 11, 29, 3, 50),
    ),
    "premium on a holiday": (
        "premium",  # high: 30 / 480
        "high",
        rome(2026, 12, 24, 20, 0),
        rome(2026, 12, 24, 20, 30),
        rome(2026, 12, 25, 4, 0),  # Christmas night counts
    ),
    "premium across the change to summer time": (
        "premium",
        "critical",
        rome(2027, 3, 28, 1, 30),  # CET; at 02:00 the clocks jump to 03:00
        rome(2027, 3, 28, 1, 45),
        rome(2027, 3, 28, 6, 30),  # four hours later, 05:30 on the old clock
    ),
}


@pytest.mark.parametrize("case", list(DEADLINES))
def test_the_deadlines_count_the_levels_hours(case):
    level, urgency, opened, response, restore = DEADLINES[case]
    assert TABLE.response_due(opened, level, urgency) == response
    assert TABLE.restore_due(opened.astimezone(UTC), level, urgency) == restore
    # and back: the SLA time between the opening and each deadline is the table's
    assert TABLE.elapsed(level, opened, response) == TABLE.response[level][urgency]
    assert TABLE.elapsed(level, opened, restore) == TABLE.restore[level][urgency]


def test_elapsed_sla_time_between_two_instants():
    friday, monday = rome(2026, 11, 27, 17, 0), rome(2026, 11, 30, 10, 0)
    assert TABLE.elapsed("base", friday, monday) == minutes(120)
    assert TABLE.elapsed("business", friday, monday) == minutes(120)
    assert TABLE.elapsed("premium", friday, monday) == timedelta(hours=65)
    assert TABLE.elapsed("base", monday, friday) == -minutes(120)
    # inside closed hours, nothing passes
    assert TABLE.elapsed("base", rome(2026, 11, 28, 10, 0), rome(2026, 11, 29, 23, 0)) == timedelta(0)
    # the two weeks around the clocks going back: ten days of nine hours, the Sunday's extra hour closed
    assert TABLE.elapsed("base", rome(2026, 10, 19, 0, 0), rome(2026, 10, 31, 0, 0)) == timedelta(hours=90)
    # an unregistered caller (no level) counts as base
    assert TABLE.elapsed(None, friday, monday) == minutes(120)


def test_the_table_says_which_hours_each_level_counts(tmp_path: Path):
    text = sla.DEFAULT_TABLE.read_text(encoding="utf-8")
    early = sla.parse(
        text.replace('week = "mon-fri 09:00-18:00"', 'week = "mon-fri 08:00-12:00"').replace(
            'premium = "around_the_clock"', 'premium = "business_hours"'
        )
    )
    friday = rome(2026, 11, 27, 11, 30)
    assert early.response_due(friday, "premium", "critical") == rome(2026, 11, 27, 11, 45)
    assert early.response_due(friday, "base", "critical") == rome(2026, 11, 30, 8, 30)
    with pytest.raises(sla.SlaTableError, match=r"\[counts\] base"):
        sla.parse(text.replace('base = "business_hours"', 'base = "office_hours"'))
    with pytest.raises(sla.SlaTableError, match=r"\[business_hours\] week"):
        sla.parse(text.replace('week = "mon-fri 09:00-18:00"', 'week = "weekdays"'))


# -- a ticket's clocks -----------------------------------------------------------------------------


def a_ticket(app, customer_code: str, urgency: str, opened: datetime, *, counted: bool = True) -> str:  # type: ignore[no-untyped-def]
    """A ticket of a recognised contact of the customer, opened at `opened`; its deadlines counted as at the
    opening (or, `counted` False, none kept: a ticket from before they were); its number."""
    number = console_queue.add_ticket(app, urgency, customer_code, phase="triage")
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        ticket.created_at = opened.astimezone(UTC)
        if counted:
            deadlines.count(ticket, TABLE)
    return number


def the_ticket(app, number: str) -> Ticket:  # type: ignore[no-untyped-def]
    return rules.the_ticket(app, number)


def test_a_ticket_opened_by_a_call_has_its_deadlines(app, client, caller):
    call = caller(GIULIA)  # Officine Brambilla: premium, around the clock
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.call_sid == call.call_sid)).one()
    assert ticket.urgency == "critical"
    assert ticket.response_due_at == ticket.created_at + minutes(15)
    assert ticket.restore_due_at == ticket.created_at + minutes(240)
    assert ticket.first_response_at is None and ticket.restored_at is None


def test_a_change_of_urgency_counts_the_deadlines_again_and_the_thread_says_so(app, client, people: People):
    number = a_ticket(app, "2002", "normal", rome(2026, 11, 27, 17, 30))  # Studio Verdi: base
    ticket = the_ticket(app, number)
    assert (ticket.response_due_at, ticket.restore_due_at) == (rome(2026, 11, 30, 16, 30), rome(2026, 12, 15, 14, 30))

    answer = post(client, number, "change_urgency", {"as": DORA, "urgency": "critical", "reason": "Tutti fermi"})

    assert answer.status_code == 200, answer.get_json()
    ticket = the_ticket(app, number)
    assert ticket.response_due_at == rome(2026, 11, 30, 9, 30)  # from the opening, not from now
    assert ticket.restore_due_at == rome(2026, 12, 2, 14, 30)
    entry = ticket.events[-1]
    assert entry.kind == "urgency_set" and entry.user_id == people.dora
    assert thread.render(entry, "it") == (
        "Urgenza cambiata da normale a critica. Motivo: «Tutti fermi». Nuove scadenze SLA, contate dall'apertura:"
        " risposta entro il 30/11/2026 09:30, ripristino entro il 02/12/2026 14:30."
    )
    assert thread.render(entry, "en") == (
        'Urgency changed from normal to critical. Reason: "Tutti fermi". New SLA deadlines, counted from the'
        " opening: respond by 2026-11-30 09:30, restore by 2026-12-02 14:30."
    )

    # confirming it moves nothing, and says nothing of the deadlines
    act(app, number, people.dora, actions.set_urgency, "critical", "")
    assert "response_due" not in the_ticket(app, number).events[-1].facts


def test_the_sla_table_in_force_counts_the_new_deadlines(app, client, people: People, tmp_path: Path):
    number = a_ticket(app, "2002", "normal", rome(2026, 11, 27, 17, 30))
    around = tmp_path / "sla.toml"
    around.write_text(
        sla.DEFAULT_TABLE.read_text(encoding="utf-8").replace('base = "business_hours"', 'base = "around_the_clock"')
    )
    with_settings(app, sla_table=around)
    assert post(client, number, "change_urgency", {"as": DORA, "urgency": "high", "reason": "Lento"}).status_code == 200
    ticket = the_ticket(app, number)
    assert ticket.response_due_at == rome(2026, 11, 27, 19, 30)  # base, high: 120 minutes, on a Friday evening


def test_matching_the_caller_counts_the_deadlines_at_the_customers_level(app, people: People):
    number = open_ticket(app, "+393471112233")  # unregistered: held to base
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        ticket.created_at = rome(2026, 11, 27, 17, 30).astimezone(UTC)
        deadlines.count(ticket, TABLE)
        giulia = ticket_contact_id(session, "1001")
    assert the_ticket(app, number).response_due_at == rome(2026, 11, 30, 16, 30)  # base, normal

    done = act(app, number, people.dora, actions.match_caller, giulia)

    ticket = the_ticket(app, number)
    assert ticket.response_due_at == rome(2026, 11, 27, 19, 30)  # premium, normal: 120 minutes around the clock
    assert ticket.restore_due_at == rome(2026, 11, 28, 17, 30)
    assert "risposta entro il 27/11/2026 19:30, ripristino entro il 28/11/2026 17:30" in rules.said(done)


def ticket_contact_id(session, code: str) -> int:  # type: ignore[no-untyped-def]
    return session.scalars(select(Customer).where(Customer.code == code)).one().contacts[0].id


def test_the_first_action_of_a_person_is_the_first_response(app, people: People):
    number = open_ticket(app)
    assert the_ticket(app, number).first_response_at is None

    act(app, number, people.dora, actions.assign, people.luca)
    first = the_ticket(app, number)
    assert first.first_response_at == first.events[-1].at

    act(app, number, people.luca, actions.add_note, "Passo nel pomeriggio.")
    assert the_ticket(app, number).first_response_at == first.first_response_at  # the first one stays


def test_a_reply_is_a_first_response(app, people: People):
    number = open_ticket(app)
    act(app, number, people.dora, actions.reply, "Ci siamo, la richiamiamo entro un'ora.")
    ticket = the_ticket(app, number)
    assert ticket.events[-1].kind == "reply" and ticket.first_response_at == ticket.events[-1].at


def test_a_refused_action_is_no_response(app, people: People):
    number = open_ticket(app)
    rules.refused(app, number, people.dora, actions.set_urgency, "critical", "")  # a change needs a reason
    assert the_ticket(app, number).first_response_at is None


def test_the_move_to_resolved_is_the_restore_and_going_back_to_work_starts_the_clock_again(app, people: People):
    number = open_ticket(app)
    act(app, number, people.dora, actions.move_phase, "triage")
    act(app, number, people.dora, actions.move_phase, "resolved")
    resolved = the_ticket(app, number)
    assert resolved.restored_at is not None and resolved.restored_at == resolved.resolved_at
    assert resolved.events[-1].facts == {"from": "triage", "to": "resolved"}

    act(app, number, people.dora, actions.move_phase, "triage")  # the customer says it is not fixed
    assert the_ticket(app, number).restored_at is None

    act(app, number, people.dora, actions.move_phase, "resolved")
    again = the_ticket(app, number)
    assert again.restored_at is not None and again.restored_at > resolved.restored_at
    act(app, number, people.dora, actions.move_phase, "closed")
    assert the_ticket(app, number).restored_at == again.restored_at


def test_the_restore_recorded_through_the_console(app, client, people: People):
    number = open_ticket(app, status="triage")
    with app.config["SESSIONMAKER"]() as session:
        dora = session.get(User, people.dora)
        session.expunge(dora)
    sign_in(client, dora)
    done = console_ticket.post(
        client, number, "phase", {"phase": "resolved"}, console_ticket.csrf_token(client, number)
    )
    assert done.status_code == 302
    ticket = the_ticket(app, number)
    assert ticket.status == "resolved" and ticket.restored_at is not None
    assert ticket.first_response_at is not None  # the move was the first action too
    assert abs(ticket.first_response_at - ticket.restored_at) < timedelta(seconds=1)


# -- the queue -------------------------------------------------------------------------------------


def test_the_queue_shows_the_time_left_on_the_stored_clocks(app, client, people: People):
    sign_in(client, console_queue.add_user(app, "Quinta Queue"))
    now = utcnow()
    early = timedelta(seconds=10)  # time left is shown rounded up, overdue rounded down, while the test runs
    waiting = console_queue.add_ticket(app, "high", "2002", response_due_at=now + minutes(42) - early)
    answered = console_queue.add_ticket(
        app,
        "high",
        "2002",
        first_response_at=now - minutes(5),
        response_due_at=now - minutes(1),  # answered late: that is for the statistics, not the queue
        restore_due_at=now + minutes(190) - early,
    )
    not_restored = console_queue.add_ticket(
        app,
        "high",
        "2002",
        first_response_at=now - minutes(50),
        restore_due_at=now - minutes(5) - early,
    )
    before_the_columns = a_ticket(app, "2002", "critical", rome(2026, 11, 27, 17, 30), counted=False)

    page = client.get("/console/").get_data(as_text=True)
    table = console_queue.QueueTable(page)

    assert table.row(waiting).left == "42 min"
    assert "breached" not in table.row(waiting).classes
    assert table.row(answered).left == "risposta data, ripristino: 3 h 10 min"
    assert "answered" in table.row(answered).classes and "breached" not in table.row(answered).classes
    assert table.row(not_restored).left == "SLA superato risposta data, ripristino: in ritardo di 5 min"
    assert "breached" in table.row(not_restored).classes
    # a ticket from before the deadlines were kept: counted from the table, in business hours
    assert "breached" in table.row(before_the_columns).classes
    assert 'title="Rispondere entro il 30/11/2026 09:30"' in page
    # the most urgent first; within an urgency the waiting ones, then the answered by their restore deadline
    assert table.numbers() == [before_the_columns, waiting, not_restored, answered]


def test_the_queue_of_a_ticket_opened_by_a_call(app, client, caller):
    sign_in(client, console_queue.add_user(app, "Quinta Queue"))
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")
    [row] = console_queue.QueueTable(client.get("/console/queue/rows").get_data(as_text=True)).rows
    assert row.left == "15 min"
    with app.config["SESSIONMAKER"]() as session:
        entries = session.scalars(select(TicketEvent.kind).join(Ticket).where(Ticket.number == row.number)).all()
    assert "opened" in entries
