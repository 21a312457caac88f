"""A dispatcher's morning, in a real browser: Debian's chromium driven by Playwright against the app
served for real, with a real worker process (RQ, transcription, the outbox) on a private Redis, an
SMTP server, and callers dialling in with real audio.

Each test is one part of the morning, on a line of its own (database, worker, server). They
save the screenshots in docs/screenshots/ that the README shows.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import prompts
from ivr import create_app
from ivr.settings import Settings
from ivr.simulator import twilio_requests as twilio
from storage.models import Ticket
from tests.browser import (
    CHROMIUM,
    VIEWPORT,
    Console,
    LiveCaller,
    LiveServer,
    StatisticsPage,
    launch_chromium,
    screenshot,
)
from tests.conftest import DISPATCH, GIULIA, STRANGER, SmtpSink, free_port, phone_audio
from tests.test_end_to_end import Line, line, redis_server  # noqa: F401  (fixtures: the worker and its Redis)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.usefixtures("directory"),
    # One database is enough here: the Flask client's tests run the console on both.
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

if not (os.access(CHROMIUM, os.X_OK) and shutil.which("espeak-ng")) and not os.environ.get("CI"):
    pytest.skip(f"needs {CHROMIUM} and espeak-ng (scripts/test installs them)", allow_module_level=True)

ROME = ZoneInfo("Europe/Rome")
DISPATCHER = ("Chiara Galli", "chiara.galli@helpdesk.example.it", "mattino-presto-42")
TECHNICIAN = ("Luca Ferrari", "luca.ferrari@helpdesk.example.it", "stampanti-e-reti-7")
OTHER_TECHNICIAN = ("Sara Conti", "sara.conti@helpdesk.example.it", "server-e-backup-9")
MAIL_FROM = "assistenza@helpdesk.example.it"
GIULIA_EMAIL = "giulia.rossi@brambilla.example.it"
REFERENT_EMAIL = "marco.bianchi@brambilla.example.it"  # Officine Brambilla's referent: copied on Giulia's emails
# Giulia calls from her mobile, which is not in the directory: an unregistered caller.
PRINTER_MESSAGE = (
    "Buongiorno, sono Giulia Rossi delle Officine Brambilla, chiamo dal cellulare. "
    "La stampante di rete non stampa più e non riusciamo a stampare le bolle."
)


class HelpDesk:
    """The line as the morning sees it: callers dialling the live server, the worker's database, the SMTP sink."""

    def __init__(self, line: Line, server: LiveServer, smtp: SmtpSink) -> None:  # noqa: F811
        self.line, self.server, self.smtp = line, server, smtp

    # -- callers

    def call_with_a_problem(self, from_: str, words: str, *, everything_stopped: bool = True) -> LiveCaller:
        """A caller known by caller ID: a new request, its gravity, a message after the beep, confirmed."""
        call = LiveCaller(self.server, from_)
        self.line.call_with_audio(call, words, "it", keys=("1", "1" if everything_stopped else "2"))
        return call

    def leave_voicemail(self, words: str, from_: str = STRANGER) -> LiveCaller:
        """A caller not in the directory: a new request, "it partly works", a message, and hangs up (voicemail)."""
        call = LiveCaller(self.server, from_)
        self.line.call_with_audio(call, words, "it", keys=("1", "2"), hang_up=True)
        return call

    def call_from_a_withheld_number(self, callback: str, words: str) -> LiveCaller:
        """A caller who withholds the number, types one to be called back on, and asks a question (confirmed)."""
        call = LiveCaller(self.server, "anonymous")
        call.dial_in()
        call.stay_silent()  # the language offer
        call.press(callback + "#")
        call.stay_silent()  # no customer code
        call.press("1"), call.press("3")  # a new request; a request for information
        sid = twilio.new_sid("RE")
        url = self.line.recordings.publish(sid, phone_audio(self.line.tmp / f"{sid}.wav", words, "it"))
        call.speak(recording_url=url, sid=sid)
        call.press("1")  # keep the message
        call.recording_ready(sid, url)
        call.hang_up()
        return call

    def hear_status(self, number: str) -> str:
        """A contact known by caller ID dials in, presses 2 (where a request stands), then 2 for the newest one."""
        call = LiveCaller(self.server, number)
        call.dial_in()
        call.stay_silent()  # the language offer; a known caller hears the main menu
        call.press("2")
        return call.press("2").said()

    # -- what the line and the worker did

    def ticket(self, call: LiveCaller) -> Ticket:
        with self.line.app.config["SESSIONMAKER"]() as session:
            ticket = session.scalars(select(Ticket).where(Ticket.call_sid == call.call_sid)).one()
            _ = ticket.events
            return ticket

    def wait_for_transcript(self, call: LiveCaller, timeout: float = 120) -> Ticket:
        """The call's ticket once the worker has fetched its recording and transcribed it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ticket = self.ticket(call)
            if ticket.transcribed_at is not None and ticket.recording_path:
                return ticket
            time.sleep(0.2)
        raise AssertionError(f"no transcript in {timeout} s; worker log:\n{self.line.worker.log()[-3000:]}")

    def email_to(self, address: str, subject_part: str, timeout: float = 60) -> EmailMessage:
        """The first email to `address` whose subject holds `subject_part`, once the SMTP sink has it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.smtp.to(address):
                if subject_part in message["Subject"]:
                    return message
            self.smtp.wait_for(len(self.smtp.messages) + 1, timeout=0.5)
        subjects = [(rcpts, message["Subject"]) for rcpts, message in self.smtp.messages]
        raise AssertionError(f"no email to {address} about {subject_part!r} in {timeout} s; the sink has {subjects}")

    def recipients(self, message: EmailMessage) -> list[str]:
        """Whom the SMTP server was asked to deliver `message` to (Cc included)."""
        return next(rcpts for rcpts, kept in self.smtp.messages if kept is message)


# -- the line, the help desk's people and the browser -------------------------------------------------


@pytest.fixture
def desk(settings: Settings, line: Line, smtp_sink: SmtpSink) -> Iterator[HelpDesk]:  # noqa: F811
    """The app served for real on 127.0.0.1:<free port>, PUBLIC_BASE_URL pointing at it, next to the `line`
    fixture's worker process: the same database, Redis, recordings folder, SMTP sink and senders."""
    port = free_port()
    app = create_app(
        replace(
            settings,
            public_base_url=f"http://127.0.0.1:{port}",
            redis_url=line.redis.url,
            smtp_host="127.0.0.1",
            smtp_port=smtp_sink.port,
            mail_from=MAIL_FROM,
            dispatch_email=DISPATCH,
        )
    )
    server = LiveServer(app, port)
    add_people(server)
    yield HelpDesk(line, server, smtp_sink)
    server.stop()
    app.config["ENGINE"].dispose()


def add_people(server: LiveServer) -> None:
    """The dispatcher and two technicians with their skills, made as the README says: `flask add-user`."""
    runner = server.app.test_cli_runner()
    for (name, email, password), role, skills in (
        (DISPATCHER, "dispatcher", None),
        (TECHNICIAN, "technician", "network,printers"),
        (OTHER_TECHNICIAN, "technician", "servers,windows-server"),
    ):
        args = ["add-user", email, "--role", role, "--name", name, *(["--skills", skills] if skills else [])]
        result = runner.invoke(args=args, input=password + "\n")  # the password on stdin, as a script gives it
        assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, desk: HelpDesk) -> Iterator:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport=VIEWPORT, locale="it-IT", timezone_id="Europe/Rome")
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def console(page, desk: HelpDesk) -> Console:  # type: ignore[no-untyped-def]
    return Console(page, desk.server.url)


# -- the morning ---------------------------------------------------------------------------------------


def test_the_dispatcher_signs_in_and_new_calls_appear_in_the_queue_without_reloading(
    desk: HelpDesk, console: Console, page
):
    overnight = desk.call_with_a_problem(GIULIA, "Il server dei file non risponde e in ufficio nessuno lavora.")
    critical = desk.ticket(overnight).number  # premium, everything stopped

    queue = console.sign_in(DISPATCHER[1], DISPATCHER[2])
    queue.wait_for_ticket(critical)
    page.evaluate("window.queueNeverReloaded = true")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)

    voicemail = desk.ticket(desk.leave_voicemail(PRINTER_MESSAGE)).number
    queue.wait_for_ticket(voicemail)
    assert {"voicemail", "unregistered"} <= queue.marks(voicemail)

    withheld = desk.call_from_a_withheld_number("3331234567", "Buongiorno, vorrei sapere come cambiare la password.")
    callback = desk.ticket(withheld).number
    queue.wait_for_ticket(callback)
    assert "callback" in queue.marks(callback)

    assert page.evaluate("window.queueNeverReloaded === true") and navigations == []
    assert queue.numbers() == [critical, voicemail, callback]  # the most urgent first
    screenshot(page, "queue")


def test_the_dispatcher_opens_a_voicemail_and_listens_to_it(desk: HelpDesk, console: Console, page):
    call = desk.leave_voicemail(PRINTER_MESSAGE)
    number = desk.ticket(call).number
    queue = console.sign_in(DISPATCHER[1], DISPATCHER[2])
    queue.wait_for_ticket(number)
    desk.wait_for_transcript(call)  # the worker has fetched the recording and transcribed it

    ticket = queue.open_ticket(number)
    assert STRANGER in ticket.caller()
    assert "stampante" in ticket.transcript().lower()
    assert ticket.play_recording() > 0
    assert ticket.thread_entries()
    screenshot(page, "ticket", full_page=False)  # what the dispatcher sees on opening it


def test_the_dispatcher_works_the_ticket_to_closed_and_the_caller_hears_it_on_the_phone(
    desk: HelpDesk, console: Console
):
    call = desk.leave_voicemail(PRINTER_MESSAGE)
    number = desk.ticket(call).number
    desk.wait_for_transcript(call)
    ticket = console.sign_in(DISPATCHER[1], DISPATCHER[2]).open_ticket(number)

    ticket.set_urgency("high", reason="Nessuno in ufficio riesce a stampare le bolle di consegna.")
    assert "alta" in ticket.work()

    # The caller is Giulia, from her mobile: matched, and the mobile saved on her contact.
    ticket.match_caller("Giulia Rossi", save_number=True)
    assert "Giulia Rossi" in ticket.caller() and "Officine Brambilla" in ticket.caller()
    confirmation = desk.email_to(GIULIA_EMAIL, number)
    assert "stampante" in confirmation.get_content().lower()

    ticket.assign("Luca Ferrari", skill="printers")
    assert "Luca Ferrari" in ticket.work()
    skilled, others = ticket.technicians_offered().values()  # the list now shows who has the skill first
    assert skilled == ["Luca Ferrari"] and any("Sara Conti" in name for name in others)

    restore = (datetime.now(ROME) + timedelta(days=2)).replace(hour=10, minute=30, second=0, microsecond=0)
    ticket.set_restore_time(restore.replace(tzinfo=None))
    estimate = desk.email_to(GIULIA_EMAIL, "ripristino previsto")
    assert number in estimate["Subject"] and "10:30" in estimate.get_content()
    assert REFERENT_EMAIL in estimate["Cc"] and REFERENT_EMAIL in desk.recipients(estimate)

    for phase in ("triage", "diagnostics", "intervention"):
        ticket.move_to(phase)
    assert "intervento" in ticket.work()

    # Giulia calls again from her mobile, known now, and asks where her request stands.
    heard = desk.hear_status(STRANGER)
    say = prompts.catalogue("it").text
    assert say("status_phase", phase=say("phase_intervention")) in heard
    assert say("status_urgency", urgency=say("urgency_high")) in heard
    when = prompts.spoken_when(restore.astimezone(UTC), datetime.now(UTC), "it", ROME)
    assert say("status_estimate", when=when) in heard and "10:30" in when
    assert say("status_technician", name="Luca") in heard

    ticket.move_to("resolved")
    ticket.move_to("closed")
    assert "chiusa" in ticket.work() and not ticket.offers("phase")
    by_the_dispatcher = [entry for entry in ticket.thread_entries() if entry.startswith(DISPATCHER[0])]
    assert len(by_the_dispatcher) == 9  # urgency, match, assignment, estimate, five phase moves: each on the thread
    screenshot(ticket.thread(), "thread")


def test_the_dispatcher_reads_the_days_calls_in_the_statistics_drawn_as_charts(desk: HelpDesk, console: Console, page):
    calls = [
        desk.call_with_a_problem(GIULIA, "Il server dei file non risponde e in ufficio nessuno lavora."),
        desk.leave_voicemail(PRINTER_MESSAGE),
    ]
    desk.hear_status(GIULIA)  # a question the line answers on its own
    voicemail = desk.ticket(calls[1]).number or ""

    queue = console.sign_in(DISPATCHER[1], DISPATCHER[2])
    queue.wait_for_ticket(voicemail)
    ticket = queue.open_ticket(voicemail)
    ticket.set_urgency("high", reason="Nessuno in ufficio riesce a stampare le bolle di consegna.")  # answered
    for phase in ("triage", "diagnostics", "intervention", "resolved"):  # and restored
        ticket.move_to(phase)

    stats = StatisticsPage(page, desk.server.url).open_from_the_menu()  # the current month, every customer
    expected: dict[str, int] = {}
    for opened in (desk.ticket(call) for call in calls):
        expected[f"{opened.channel}/{opened.urgency}"] = 1  # today's: one bar in its series
    assert len(expected) == 2  # critical (everything stopped, premium), and high
    assert stats.series("stats-tickets-chart") == expected
    assert stats.series("stats-response-chart") == {"median": 1, "p90": 1}  # the voicemail was answered ...
    assert stats.series("stats-restore-chart") == {"median": 1, "p90": 1}  # ... and restored; the other not yet
    box = stats.bars("stats-tickets-chart", next(iter(expected))).first.bounding_box()
    assert box is not None and box["height"] > 0, "the bar is drawn"
    assert stats.figure("calls", "answered") == "3" and stats.figure("calls", "status_answered") == "1"

    download = stats.download_csv()
    assert download.suggested_filename.startswith("stats_") and download.suggested_filename.endswith(".csv")
    screenshot(page, "statistics")
