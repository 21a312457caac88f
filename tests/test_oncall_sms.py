"""On-call alerts: a critical ticket is texted to the on-call technician at once through Twilio's Messages API
(a local stand-in here), once, retried while Twilio fails, kept on the thread when refused; and again, with the
dispatchers emailed, at half its response time if nobody has acted on it."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import pytest
from flask import url_for
from rq import SimpleWorker
from sqlalchemy import select, update

from helpdesk import actions, sla
from ivr import create_app
from ivr.jobs.follow_up import _raise_urgency
from ivr.jobs.oncall import CONSOLE_TICKET_PATH, first_words
from ivr.settings import Settings, SettingsError
from ivr.worker.relay import job_queue, relay_once
from storage import outbox
from storage.models import PendingWork, TextMessage, Ticket, User, utcnow
from storage.phones import masked
from storage.sms import get_text_messages_of_ticket
from tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    BASE_URL,
    DISPATCH,
    GIULIA,
    Caller,
    posted_form,
    reply_json,
    serve_on_loopback,
    twilio_basic_auth,
    with_settings,
)

pytestmark = pytest.mark.usefixtures("directory")

ONCALL = "+393331234567"  # the on-call technician's mobile
SMS_FROM = "+390392847438"  # the line's number, which texts too
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
ANSWERS = {
    400: {
        "code": 21211,
        "message": f"Invalid 'To' Phone Number: {ONCALL}",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    },
    500: {"code": 20500, "message": "Internal Server Error", "status": 500},
}


@dataclass
class TwilioMessages:
    """Twilio's Messages API for one account, on loopback: checks Basic auth, keeps each accepted form.

    `answers` are the statuses of the next requests (201, 400 or 500), then 201; `hold()` makes the next
    request wait until the test releases it.
    """

    answers: list[int] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)  # the requests that carried the right credentials
    refused_auth: int = 0
    gate: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.httpd, self.url = serve_on_loopback(self.handle)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        form = posted_form(request)
        if request.headers.get("Authorization") != twilio_basic_auth(AUTH_TOKEN):
            self.refused_auth += 1
            return reply_json(request, 401, {"code": 20003, "message": "Authenticate", "status": 401})
        if urlsplit(request.path).path != MESSAGES_PATH:
            return reply_json(request, 404, {"code": 20404, "message": "Not found", "status": 404})
        self.forms.append(form)
        gate, self.gate = self.gate, None
        if gate is not None:
            self.entered.set()
            gate.wait(30)
        status = self.answers.pop(0) if self.answers else 201
        if status != 201:
            return reply_json(request, status, ANSWERS[status])
        message = {
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": ACCOUNT_SID,
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body"),
            "status": "queued",
        }
        reply_json(request, 201, message)

    def hold(self) -> threading.Event:
        self.entered.clear()
        self.gate = threading.Event()
        return self.gate

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.httpd.shutdown()


@pytest.fixture
def twilio_api():
    api = TwilioMessages()
    yield api
    api.close()


@pytest.fixture
def settings(settings: Settings, twilio_api: TwilioMessages) -> Settings:
    """The tests' settings with the on-call number set, and Twilio's API served by the stand-in."""
    return replace(settings, oncall_sms_to=ONCALL, twilio_sms_from=SMS_FROM, twilio_api_url=twilio_api.url)


@pytest.fixture
def queue(settings):
    queue = job_queue(settings)
    yield queue
    queue.delete(delete_jobs=True)


# -- helpers ---------------------------------------------------------------------------------------


def open_on_the_line(caller, severity: str = "1") -> str:
    """Giulia (premium) calls: a new request, `severity` (1: everything is stopped), a message, confirmed."""
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press(severity), call.speak(), call.press("1")
    return the_ticket_of(call.client.application).number


def the_ticket_of(app) -> Ticket:
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).order_by(Ticket.id.desc())).first()
        _ = ticket.events
        return ticket


def work(app, kind: str) -> list[PendingWork]:
    with app.config["SESSIONMAKER"]() as session:
        return list(session.scalars(select(PendingWork).where(PendingWork.kind == kind).order_by(PendingWork.id)))


def change_work(app, kind: str, **values) -> None:
    with app.config["SESSIONMAKER"]() as session, session.begin():
        session.execute(update(PendingWork).where(PendingWork.kind == kind).values(**values))


def sms_of(app, ticket: Ticket) -> list[TextMessage]:
    with app.config["SESSIONMAKER"]() as session:
        return get_text_messages_of_ticket(session, ticket.id)


def thread_kinds(app) -> list[str]:
    return [event.kind for event in the_ticket_of(app).events]


def dispatcher(app) -> int:
    with app.config["SESSIONMAKER"]() as session, session.begin():
        user = User(name="Dora Esposito", email="dora@helpdesk.example.it", role="dispatcher")
        session.add(user)
        session.flush()
        return user.id


def act(app, number: str, user_id: int, action, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """A person's action on the ticket, in one transaction, as the console and the API take it."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = session.scalars(select(Ticket).where(Ticket.number == number).with_for_update()).one()
        action(session, ticket, session.get(User, user_id), *args, **kwargs)


# -- the first SMS --------------------------------------------------------------------------------


def test_a_critical_ticket_opened_on_the_line_is_texted_at_once(app, caller, jobs, twilio_api, caplog):
    caplog.set_level(logging.INFO)
    number = open_on_the_line(caller)
    ticket = the_ticket_of(app)
    assert ticket.urgency == "critical"
    [alert] = work(app, outbox.ONCALL_SMS)
    assert alert.due_at is None and alert.ticket_id == ticket.id
    [reminder] = work(app, outbox.ONCALL_REMINDER)
    # Premium counts every minute: half of its 15 minutes for a critical ticket.
    assert reminder.due_at == ticket.created_at + timedelta(minutes=7, seconds=30)

    assert jobs.run_all(outbox.ONCALL_SMS) == ["done"]

    [form] = twilio_api.forms
    assert twilio_api.refused_auth == 0
    assert form["To"] == ONCALL and form["From"] == SMS_FROM
    body = form["Body"]
    assert number in body and "Officine Brambilla" in body
    assert f"{BASE_URL}/console/tickets/{number}" in body
    [sms] = sms_of(app, ticket)
    assert sms.sent_at is not None and sms.twilio_sid.startswith("SM") and sms.body == body
    [entry] = [e for e in the_ticket_of(app).events if e.kind == "oncall_sms"]
    assert entry.facts == {"alert": "alert", "to": masked(ONCALL), "sid": sms.twilio_sid}
    for secret_or_personal in (ONCALL, ONCALL[3:], AUTH_TOKEN):
        assert secret_or_personal not in caplog.text


def test_the_alert_goes_ahead_of_the_follow_up_in_the_queue(app, settings, caller, queue):
    open_on_the_line(caller)
    assert relay_once(settings, app.config["SESSIONMAKER"], queue) == 2  # the follow-up and the alert, not the reminder
    assert queue.job_ids[0].startswith(f"{outbox.ONCALL_SMS}-")
    assert queue.job_ids[1].startswith(f"{outbox.FOLLOW_UP}-")


def test_the_sms_is_sent_once_when_its_job_runs_twice(app, caller, jobs, twilio_api):
    open_on_the_line(caller)
    [alert] = work(app, outbox.ONCALL_SMS)
    assert jobs.run(alert.id) == "done"
    assert jobs.run(alert.id) == "skipped"  # done
    change_work(app, outbox.ONCALL_SMS, done_at=None)  # as if the relay sent it again
    assert jobs.run(alert.id) == "done"
    assert len(twilio_api.forms) == 1
    assert thread_kinds(app).count("oncall_sms") == 1


def test_a_second_job_never_sends_the_sms_another_is_sending(app, caller, jobs, twilio_api):
    """The first job is inside Twilio's request when its lease is taken over: the second finds the SMS claimed."""
    open_on_the_line(caller)
    [alert] = work(app, outbox.ONCALL_SMS)
    gate = twilio_api.hold()
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(jobs.run(alert.id)))
    first.start()
    assert twilio_api.entered.wait(20)
    change_work(app, outbox.ONCALL_SMS, lease_token="expired", lease_until=None)  # its lease is lost
    with pytest.raises(Exception, match="claimed by another job"):
        jobs.run(alert.id)
    gate.set()
    first.join(20)
    assert results == ["lost"]  # it sent and recorded the SMS, but the work is no longer its own
    assert len(twilio_api.forms) == 1
    [sms] = sms_of(app, the_ticket_of(app))
    assert sms.sent_at is not None
    assert thread_kinds(app).count("oncall_sms") == 1


def test_twilio_down_is_retried_and_the_sms_sent_once(app, caller, jobs, twilio_api, queue):
    """RQ runs the job (a worker in this process): Twilio's 500 fails the run, RQ's retry sends it."""
    with_settings(app, retry_intervals=(0, 0))  # RQ retries at once
    open_on_the_line(caller)
    change_work(app, outbox.FOLLOW_UP, done_at=utcnow())  # only the alert, for this test
    twilio_api.answers = [500]
    assert relay_once(app.config["SETTINGS"], app.config["SESSIONMAKER"], queue) == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)

    assert len(twilio_api.forms) == 2  # the 500, then the retry
    [sms] = sms_of(app, the_ticket_of(app))
    assert sms.sent_at is not None and sms.refused_at is None
    assert thread_kinds(app).count("oncall_sms") == 1
    [alert] = work(app, outbox.ONCALL_SMS)
    assert alert.done_at is not None and alert.failures == 1


def test_a_refusal_is_kept_on_the_thread_and_not_tried_again(app, caller, jobs, twilio_api):
    open_on_the_line(caller)
    twilio_api.answers = [400]
    [alert] = work(app, outbox.ONCALL_SMS)
    assert jobs.run(alert.id) == "done"
    change_work(app, outbox.ONCALL_SMS, done_at=None)
    assert jobs.run(alert.id) == "done"
    assert len(twilio_api.forms) == 1

    [sms] = sms_of(app, the_ticket_of(app))
    assert sms.sent_at is None and sms.refused_at is not None
    [entry] = [e for e in the_ticket_of(app).events if e.kind == "oncall_sms_refused"]
    assert entry.facts["alert"] == "alert" and entry.facts["to"] == masked(ONCALL)
    assert "21211" in entry.facts["answer"] and ONCALL not in entry.facts["answer"]
    assert "oncall_sms" not in thread_kinds(app)


def test_a_ticket_that_is_not_critical_is_not_texted(app, caller, jobs, twilio_api):
    open_on_the_line(caller, severity="3")  # a request or information
    assert the_ticket_of(app).urgency != "critical"
    assert work(app, outbox.ONCALL_SMS) == [] and work(app, outbox.ONCALL_REMINDER) == []
    assert jobs.run_all(outbox.ONCALL_SMS) == [] and jobs.run_all(outbox.ONCALL_REMINDER) == []
    assert twilio_api.forms == [] and sms_of(app, the_ticket_of(app)) == []


def test_a_ticket_made_critical_later_is_texted_once(app, caller, jobs, twilio_api):
    number = open_on_the_line(caller, severity="3")
    dora = dispatcher(app)
    act(app, number, dora, actions.set_urgency, "critical", "Server fermo, confermato al telefono")
    act(app, number, dora, actions.set_urgency, "high", "Ripartito in parte")
    act(app, number, dora, actions.set_urgency, "critical", "Di nuovo fermo")
    assert len(work(app, outbox.ONCALL_SMS)) == 1 and len(work(app, outbox.ONCALL_REMINDER)) == 1
    jobs.run_all(outbox.ONCALL_SMS)
    [form] = twilio_api.forms
    assert number in form["Body"]


def test_a_ticket_the_transcript_makes_critical_is_texted_with_its_first_words(app, caller, jobs, twilio_api):
    open_on_the_line(caller, severity="3")
    words = "Buongiorno, il server fermo da stamattina e non riusciamo a lavorare in tutto l'ufficio amministrativo"
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = session.scalars(select(Ticket)).one()
        ticket.transcript = words
        _raise_urgency(session, ticket, words, sla.load())
    assert the_ticket_of(app).urgency == "critical"
    jobs.run_all(outbox.ONCALL_SMS)
    [form] = twilio_api.forms
    assert "«Buongiorno, il server fermo da stamattina e non riusciamo a lavorare in…»" in form["Body"]


def test_without_an_on_call_number_nothing_is_queued(app, settings):
    quiet = create_app(replace(settings, oncall_sms_to=None, twilio_sms_from=None))
    try:
        call = Caller(quiet.test_client(), GIULIA)
        call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")
        assert the_ticket_of(quiet).urgency == "critical"
        assert work(quiet, outbox.ONCALL_SMS) == [] and work(quiet, outbox.ONCALL_REMINDER) == []
    finally:
        quiet.config["ENGINE"].dispose()


# -- the reminder at half the response time -----------------------------------------------------------


def test_the_reminder_waits_for_half_the_response_time_then_texts_and_emails_once(
    app, settings, caller, jobs, twilio_api, queue
):
    number = open_on_the_line(caller)
    jobs.run_all(outbox.ONCALL_SMS)
    change_work(app, outbox.FOLLOW_UP, done_at=utcnow())
    [reminder] = work(app, outbox.ONCALL_REMINDER)
    assert relay_once(settings, app.config["SESSIONMAKER"], queue) == 0  # not due: the relay leaves it
    assert jobs.run(reminder.id) == "skipped"  # a job that runs it early does nothing
    assert len(twilio_api.forms) == 1

    change_work(app, outbox.ONCALL_REMINDER, due_at=utcnow() - timedelta(seconds=1))  # half the time has passed
    assert relay_once(settings, app.config["SESSIONMAKER"], queue) == 1
    assert queue.job_ids == [f"{outbox.ONCALL_REMINDER}-{reminder.id}-1"]
    assert jobs.run(reminder.id) == "done"
    jobs.run_all(outbox.EMAIL)

    assert len(twilio_api.forms) == 2
    body = twilio_api.forms[1]["Body"]
    assert twilio_api.forms[1]["To"] == ONCALL and number in body and "SENZA RISPOSTA" in body
    assert f"{BASE_URL}/console/tickets/{number}" in body
    [notice] = jobs.smtp.to(DISPATCH)
    assert number in notice["Subject"] and "metà del tempo" in notice["Subject"]
    assert f"{BASE_URL}/console/tickets/{number}" in notice.get_content()
    entries = [e for e in the_ticket_of(app).events if e.kind == "oncall_sms"]
    assert [e.facts["alert"] for e in entries] == ["alert", "reminder"]
    assert "dispatch_email" in thread_kinds(app)

    change_work(app, outbox.ONCALL_REMINDER, done_at=None)  # run again: nothing more
    assert jobs.run(reminder.id) == "done"
    jobs.run_all(outbox.EMAIL)
    assert len(twilio_api.forms) == 2 and len(jobs.smtp.to(DISPATCH)) == 1


def test_no_reminder_when_someone_acted_before_half_the_response_time(app, caller, jobs, twilio_api):
    number = open_on_the_line(caller)
    jobs.run_all(outbox.ONCALL_SMS)
    act(app, number, dispatcher(app), actions.add_note, "Chiamato il cliente, ci pensa Luca.")
    change_work(app, outbox.ONCALL_REMINDER, due_at=utcnow() - timedelta(seconds=1))
    [reminder] = work(app, outbox.ONCALL_REMINDER)
    assert jobs.run(reminder.id) == "done"
    jobs.run_all(outbox.EMAIL)
    assert len(twilio_api.forms) == 1  # the first alert only
    assert jobs.smtp.to(DISPATCH) == []


def test_the_half_time_is_half_the_sla_time_not_the_wall_clock():
    """A base critical ticket (60 minutes of business hours) opened at 17:50 is half-way at 9:20 the next open day."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from helpdesk.deadlines import half_response
    from storage.models import Customer

    rome = ZoneInfo("Europe/Rome")
    ticket = Ticket(
        urgency="critical",
        created_at=datetime(2026, 12, 4, 17, 50, tzinfo=rome),  # a Friday
        customer=Customer(code="9", name="X", sla="base"),
        needs_match=False,
    )
    assert half_response(ticket, sla.load()) == datetime(2026, 12, 7, 9, 20, tzinfo=rome)


# -- the words and the settings ----------------------------------------------------------------------


def test_the_console_link_is_the_consoles_page_of_the_ticket(app):
    with app.test_request_context():
        assert url_for("ticket.view", number="1000015") == CONSOLE_TICKET_PATH.format(number="1000015")


def test_an_sms_quotes_only_the_first_words():
    assert first_words(None) is None and first_words("  ") is None
    assert first_words("Il server è fermo.") == "Il server è fermo."
    assert first_words(" ".join(["parola"] * 20)) == " ".join(["parola"] * 12) + "…"
    assert len(first_words("x" * 300) or "") <= 101


def test_the_on_call_number_needs_a_sender():
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "t", "API_TOKEN": "a", "ONCALL_SMS_TO": ONCALL}
    with pytest.raises(SettingsError, match="TWILIO_SMS_FROM"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "TWILIO_SMS_FROM": SMS_FROM}).oncall_sms_to == ONCALL
