"""The customers' monthly report: its figures checked by hand, `flask customer-report` to a file or to the
referents (once), bad input refused, and the monthly run that sends every customer's report once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from helpdesk import reports
from helpdesk.report_email import html_body, text_body
from helpdesk.sla import load as load_sla
from ivr import cli
from ivr.worker import relay
from storage import outbox
from storage.models import Contact, Customer, Email, PendingWork, Ticket
from tests.conftest import with_settings

pytestmark = pytest.mark.usefixtures("directory")

MARCO = "marco.bianchi@brambilla.example.it"  # Officine Brambilla's referent (premium: around the clock)
GIULIA = "giulia.rossi@brambilla.example.it"  # not a referent
ANNA = "anna@studioverdi.example.it"  # Studio Verdi's referent (base)
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def ticket(session, number, urgency, customer, contact, opened, response, restored, minutes, **more):  # type: ignore[no-untyped-def]
    """A ticket with chosen times; its deadlines `minutes` (response, restore) after the opening, around the clock."""
    row = Ticket(
        number=number,
        urgency=urgency,
        customer_id=customer.id,
        contact_id=contact.id,
        created_at=opened,
        first_response_at=response,
        restored_at=restored,
        response_due_at=opened + timedelta(minutes=minutes[0]),
        restore_due_at=opened + timedelta(minutes=minutes[1]),
        **more,
    )
    session.add(row)
    return row


@pytest.fixture
def october(app, directory) -> None:  # type: ignore[no-untyped-def]
    """Officine Brambilla's tickets of October 2026 (premium: high 30/480 min, critical 15/240), and others."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        brambilla = session.scalars(select(Customer).where(Customer.code == "1001")).one()
        verdi = session.scalars(select(Customer).where(Customer.code == "2002")).one()
        giulia = session.scalars(select(Contact).where(Contact.email == GIULIA)).one()
        marco = session.scalars(select(Contact).where(Contact.email == MARCO)).one()
        anna = session.scalars(select(Contact).where(Contact.email == ANNA)).one()
        high, critical = (30, 480), (15, 240)
        # answered in 20 min, restored in 4 h: both met
        ticket(session, "1000001", "high", brambilla, giulia, at(5, 8), at(5, 8, 20), at(5, 12), high)
        # answered in 40 min, restored in 9 h: both missed
        ticket(session, "1000002", "high", brambilla, giulia, at(12, 9), at(12, 9, 40), at(12, 18), high)
        # answered in 10 min, never restored, its deadline long past: met, missed
        ticket(session, "1000003", "high", brambilla, giulia, at(20, 10), at(20, 10, 10), None, high)
        # Marco's own, in English (so he reads English): answered in 5 min, restored in 2 h
        ticket(
            session,
            "1000004",
            "critical",
            brambilla,
            marco,
            at(27, 7),
            at(27, 7, 5),
            at(27, 9),
            critical,
            language="en",
        )
        # Not in the report: November's, a caller not matched to the customer, another customer's.
        ticket(session, "1000005", "high", brambilla, giulia, at(2, 9, month=11), None, None, high)
        ticket(session, "1000006", "high", brambilla, giulia, at(6, 9), at(6, 11), at(6, 12), high, needs_match=True)
        ticket(session, "1000007", "low", verdi, anna, at(7, 9), at(7, 9, 30), at(7, 10), (1440, 14400))


def the_report(app, code: str = "1001", month: date = date(2026, 10, 1)) -> reports.Report:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        customer = reports.get_customer(session, code)
        return reports.build_report(session, customer, month, load_sla(app.config["SETTINGS"].sla_table), NOW)


def emails(app) -> list[Email]:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        return list(session.scalars(select(Email).order_by(Email.id)))


def report_command(app, *args: str):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["customer-report", *args])


# -- the figures ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("october")
def test_the_reports_figures_are_the_months_tickets_times_outcomes_and_medians_against_the_contract(app):
    report = the_report(app)
    assert (report.customer_name, report.level, report.around_the_clock) == ("Officine Brambilla", "premium", True)
    assert [t.number for t in report.tickets] == ["1000001", "1000002", "1000003", "1000004"]
    assert [(t.response, t.restore) for t in report.tickets] == [
        ("met", "met"),
        ("missed", "missed"),
        ("met", "missed"),  # still not restored, long past its deadline
        ("met", "met"),
    ]
    assert [(t.response_minutes, t.restore_minutes) for t in report.tickets] == [
        (20, 240),
        (40, 540),
        (10, None),
        (5, 120),
    ]
    figures = {f.urgency: f for f in report.figures}
    # high: responses 10, 20, 40 -> 20; restores 240, 540 -> 390 (the unrestored one has no time yet)
    assert figures["high"] == reports.UrgencyFigures("high", 3, 20, 30, 390, 480)
    assert figures["critical"] == reports.UrgencyFigures("critical", 1, 5, 15, 120, 240)
    assert figures["normal"] == reports.UrgencyFigures("normal", 0, None, 120, None, 1440)
    assert figures["low"] == reports.UrgencyFigures("low", 0, None, 480, None, 4320)
    [marco] = report.readers  # Giulia is not a referent
    assert (marco.email, marco.language) == (MARCO, "en")

    text = text_body(report, "it", "Marco Bianchi")
    assert "6 h 30 min" in text and "8 h 00 min" in text and "20 min" in text  # the medians and the contract
    html = html_body(report, "it", "Marco Bianchi")
    assert 'id="chart"' in html and 'data-series="median_restore" data-urgency="high" data-minutes="390"' in html
    assert 'width="81%"' in html  # 390 of the longest bar, the contract's 480 minutes


@pytest.mark.usefixtures("october")
def test_a_ticket_whose_deadline_is_still_to_come_is_running(app):
    with app.config["SESSIONMAKER"]() as session:
        customer = reports.get_customer(session, "1001")
        early = reports.build_report(session, customer, date(2026, 10, 1), load_sla(), at(20, 10, 30))
    third = [t for t in early.tickets if t.number == "1000003"][0]
    assert (third.response, third.restore) == ("met", "running")


# -- the command ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("october")
def test_send_emails_each_referent_once_in_their_language_html_and_text_with_the_chart(app, jobs, smtp_sink):
    result = report_command(app, "1001", "--month", "2026-10", "--send")
    assert result.exit_code == 0, result.output
    assert f"queued for {MARCO}" in result.output
    jobs.run_all("email")

    [(recipients, message)] = smtp_sink.messages
    assert recipients == [MARCO]
    assert message["Subject"] == "Monthly help desk report: Officine Brambilla, October 2026"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Dear Marco Bianchi," in text and "Median times against the contract, by urgency" in text
    assert "1000002" in text and "6 h 30 min" in text
    assert '<html lang="en">' in html and 'id="chart"' in html and 'data-series="contract_restore"' in html
    assert "Service restored" in html and "1000004" in html and "1000005" not in html

    again = report_command(app, "1001", "--month", "2026-10", "--send")
    assert again.exit_code == 0 and f"already queued before, not again: {MARCO}" in again.output
    jobs.run_all("email")
    assert len(smtp_sink.messages) == 1
    assert len(emails(app)) == 1


def test_a_referent_who_never_called_reads_italian(app, jobs, smtp_sink):
    result = report_command(app, "2002", "--month", "2026-10", "--send")
    assert result.exit_code == 0, result.output
    jobs.run_all("email")
    [(recipients, message)] = smtp_sink.messages
    assert recipients == [ANNA]
    assert message["Subject"] == "Rapporto mensile dell'assistenza tecnica: Studio Verdi, ottobre 2026"
    assert "Nel mese non sono state aperte richieste di assistenza." in message.get_body(("plain",)).get_content()


@pytest.mark.usefixtures("october")
def test_without_send_the_report_is_written_to_a_file_and_nothing_is_sent(app, tmp_path):
    path = tmp_path / "out" / "report.html"
    result = report_command(app, "1001", "--month", "2026-10", "--output", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(path)
    html = path.read_text(encoding="utf-8")
    assert '<html lang="en">' in html and 'id="chart"' in html and "1000003" in html  # Marco reads English
    assert emails(app) == []


def test_the_file_goes_to_var_reports_by_default(app, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "REPORTS_DIR", tmp_path / "reports")
    result = report_command(app, "2002", "--month", "2026-10")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "reports" / "2002-2026-10.html")
    assert '<html lang="it">' in (tmp_path / "reports" / "2002-2026-10.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["9999", "--month", "2026-10"], "no customer has the code '9999'"),
        (["1001", "--month", "2026-13"], "write it as YYYY-MM"),
        (["1001", "--month", "10/2026"], "write it as YYYY-MM"),
        (["1001", "--month", "2099-01"], "it has not begun yet"),
        (["1001", "--month", "2099-01", "--send"], "it has not begun yet"),
    ],
)
def test_bad_input_is_named_exits_2_and_changes_nothing(app, tmp_path, monkeypatch, args, said):
    monkeypatch.setattr(cli, "REPORTS_DIR", tmp_path / "reports")
    result = report_command(app, *args, "--output", str(tmp_path / "r.html"))
    assert result.exit_code == 2
    assert said in result.output
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "reports").exists()
    assert emails(app) == []


def test_a_month_to_come_is_refused_but_this_one_is_not():
    today = date(2026, 11, 30)
    assert reports.parse_month("2026-11", today) == date(2026, 11, 1)
    with pytest.raises(reports.ReportError):
        reports.parse_month("2026-12", today)


# -- once a month ---------------------------------------------------------------------------------------


def monthly_runs(app) -> list[PendingWork]:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        return list(session.scalars(select(PendingWork).where(PendingWork.kind == outbox.MONTHLY_REPORTS)))


@pytest.mark.usefixtures("october")
def test_the_monthly_run_queues_every_customers_report_once(app, jobs, smtp_sink):
    with_settings(app, monthly_reports="on")
    make_session = app.config["SESSIONMAKER"]
    # October's run, written during October, twice (two relays, or two rounds): one row, due on 1 November.
    for _ in range(2):
        with make_session() as session, session.begin():
            reports.schedule_monthly_reports(session, at(20, 10))
    [run] = monthly_runs(app)
    assert run.key == "monthly_reports:2026-10"
    assert run.due_at == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)  # 07:00 in Rome

    jobs.run_all("monthly_reports")
    with make_session() as session, session.begin():  # run it again, as a retry or a second worker would
        outbox.reopen(session, run.key)
    assert jobs.run_all("monthly_reports") == ["done"]
    assert sorted(email.to_address for email in emails(app)) == [ANNA, MARCO]  # one per customer's referent

    jobs.run_all("email")
    assert sorted(recipients[0] for recipients, _ in smtp_sink.messages) == [ANNA, MARCO]
    # A --send of the same month afterwards sends nothing more.
    assert report_command(app, "1001", "--month", "2026-10", "--send").exit_code == 0
    jobs.run_all("email")
    assert len(smtp_sink.messages) == 2


def test_the_relay_writes_this_months_run_once_even_when_two_relays_race(app, monkeypatch):
    settings = with_settings(app, monthly_reports="on").config["SETTINGS"]
    make_session = app.config["SESSIONMAKER"]
    assert relay.schedule_reports(settings, make_session) is True
    assert relay.schedule_reports(settings, make_session) is False
    # A relay that looked before the other's commit: the unique key refuses its row, and it carries on.
    monkeypatch.setattr(outbox, "get_work", lambda session, key: None)
    assert relay.schedule_reports(settings, make_session) is False
    [run] = monthly_runs(app)
    assert run.due_at is not None and run.due_at > datetime.now(UTC)  # the first of next month


@pytest.mark.usefixtures("october")
def test_with_monthly_reports_off_nothing_is_scheduled_or_sent(app, jobs):
    settings = app.config["SETTINGS"]
    assert settings.monthly_reports == "off"
    assert relay.schedule_reports(settings, app.config["SESSIONMAKER"]) is False
    assert monthly_runs(app) == []
    # A run written while it was on, turned off before it was due: it queues nothing.
    with app.config["SESSIONMAKER"]() as session, session.begin():
        reports.schedule_monthly_reports(session, at(20, 10))
    assert jobs.run_all("monthly_reports") == ["done"]
    with app.config["SESSIONMAKER"]() as session:
        assert session.scalar(select(func.count()).select_from(Email)) == 0
