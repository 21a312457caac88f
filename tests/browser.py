"""The console in a real browser: the app served on a free port, callers over HTTP, and page objects.

The page objects say what a dispatcher does (`console.sign_in(...)`, `queue.open_ticket(number)`,
`ticket.set_urgency("high", reason=...)`); each page's selectors are class attributes at its top,
so a changed template is a one-line change here.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from playwright.sync_api import Browser, Download, Locator, Page, expect
from werkzeug.serving import make_server

from ivr.simulator import twilio_requests as twilio
from tests.conftest import ACCOUNT_SID, Caller

PROJECT = Path(__file__).resolve().parent.parent
SCREENSHOTS = PROJECT / "docs" / "screenshots"

CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by scripts/test: Playwright downloads no browser
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",  # the test presses play from a script
]
VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 30_000  # the longest a page is waited for: a new ticket, a saved form


# -- the line, served for real ---------------------------------------------------------------------


class LiveServer:
    """The app served by werkzeug on 127.0.0.1:`port`, in a thread of the test process."""

    def __init__(self, app: Flask, port: int) -> None:
        self.app = app
        self.url = f"http://127.0.0.1:{port}"
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()


class _Response:
    """A `requests` answer shaped like the Flask test client's, which the tests' `Caller` reads."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.mimetype = response.headers.get("Content-Type", "").split(";")[0].strip()
        self.data = response.content

    def get_data(self, as_text: bool = False) -> str | bytes:
        return self.data.decode() if as_text else self.data


class HttpClient:
    """Posts to the live server over HTTP: the `client` a `Caller` uses, in place of Flask's test client."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def post(self, path: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> _Response:
        return _Response(self.http.post(self.url + path, data=data, headers=headers or {}, timeout=15))


class LiveCaller(Caller):
    """The tests' caller (tests.conftest.Caller) dialling the live server: every webhook signed for its URL."""

    def __init__(self, server: LiveServer, from_: str) -> None:
        super().__init__(HttpClient(server.url), from_)
        self.base_url = server.url

    def dial_in(self):  # type: ignore[no-untyped-def]
        return self.answer(f"{self.base_url}/twilio/voice", {"CallStatus": "ringing"})

    def recording_ready(self, sid: str | None = None, url: str | None = None, status: str = "completed"):  # type: ignore[no-untyped-def]
        sid = sid or self.recording_sids[-1]
        recorded = twilio.recording(sid, 7, url or twilio.recording_url(ACCOUNT_SID, sid))
        return self.post(f"{self.base_url}/twilio/recording", twilio.recording_status(recorded, status))

    def hang_up(self, duration: int = 42):  # type: ignore[no-untyped-def]
        return self.post(f"{self.base_url}/twilio/status", twilio.call_ended(duration))


def launch_chromium(playwright: Any) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def screenshot(target: Page | Locator, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot the README shows: docs/screenshots/<name>.png, of a page or of one part of it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if isinstance(target, Page):
        target.screenshot(path=str(path), full_page=full_page)
    else:
        target.screenshot(path=str(path))
    return path


# -- page objects --------------------------------------------------------------------------------


class Console:
    """The console as a dispatcher opens it in the morning: the sign-in page, then the queue."""

    LOGIN_PATH = "/console/login"
    EMAIL = "main input[name=email]"
    PASSWORD = "main input[name=password]"
    SUBMIT = "main form button[type=submit]"

    def __init__(self, page: Page, url: str) -> None:
        self.page, self.url = page, url

    def sign_in(self, email: str, password: str) -> QueuePage:
        self.page.goto(self.url + self.LOGIN_PATH)
        self.page.fill(self.EMAIL, email)
        self.page.fill(self.PASSWORD, password)
        self.page.click(self.SUBMIT)
        queue = QueuePage(self.page, self.url)
        queue.wait_until_shown()
        return queue


class QueuePage:
    """/console/: the open tickets, the most urgent first; new ones appear while it is open (static/queue.js)."""

    PATH = "/console/"
    TABLE = "table.queue"
    ROWS = "table.queue tbody tr[data-ticket]"
    ROW = "table.queue tr[data-ticket='{number}']"
    LINK = "a[href$='/console/tickets/{number}']"
    MARKS = "data-marks"  # the row's attribute: voicemail, unregistered, callback
    SUMMARY = "#queue-summary"

    def __init__(self, page: Page, url: str) -> None:
        self.page, self.url = page, url

    def wait_until_shown(self) -> None:
        self.page.wait_for_url(re.compile(re.escape(self.url + self.PATH) + r"(\?.*)?$"), timeout=WAIT_MS)
        expect(self.page.locator(self.TABLE)).to_be_visible()

    def open(self) -> QueuePage:
        self.page.goto(self.url + self.PATH)
        self.wait_until_shown()
        return self

    def numbers(self) -> list[str]:
        """The tickets in the queue, in its order."""
        return [row.get_attribute("data-ticket") or "" for row in self.page.locator(self.ROWS).all()]

    def row(self, number: str) -> Locator:
        return self.page.locator(self.ROW.format(number=number))

    def wait_for_ticket(self, number: str, timeout: float = WAIT_MS) -> Locator:
        """The ticket's row, once the queue shows it (it refreshes itself)."""
        row = self.row(number)
        expect(row).to_be_visible(timeout=timeout)
        return row

    def marks(self, number: str) -> set[str]:
        return set((self.row(number).get_attribute(self.MARKS) or "").split())

    def open_ticket(self, number: str) -> TicketPage:
        self.row(number).locator(self.LINK.format(number=number)).first.click()
        ticket = TicketPage(self.page, self.url, number)
        ticket.wait_until_shown()
        return ticket


class TicketPage:
    """/console/tickets/<number>: the caller, the recording, the transcript, the thread, one form per action."""

    PATH = "/console/tickets/{number}"
    HEADING = "main h1"
    CALLER = "#caller"
    WORK = "#work"
    AUDIO = "audio#recording"
    TRANSCRIPT = "#transcript"
    THREAD = "#thread"
    THREAD_SECTION = "section:has(> #thread)"  # the thread with its heading
    THREAD_ENTRY = "#thread > li"
    FORM = "form#action-{action}"
    FIELD = "[name='{action}-{field}']"  # WTForms prefixes each field with its action's name
    SUBMIT = "button[type=submit]"
    DONE = "p.flash.success"
    ERROR = ".field-error"

    def __init__(self, page: Page, url: str, number: str) -> None:
        self.page, self.url, self.number = page, url, number

    @property
    def address(self) -> str:
        return self.url + self.PATH.format(number=self.number)

    def wait_until_shown(self) -> None:
        self.page.wait_for_url(re.compile(re.escape(self.address) + r"(\?.*)?(#.*)?$"), timeout=WAIT_MS)
        expect(self.page.locator(self.HEADING)).to_contain_text(self.number)

    def reload(self) -> TicketPage:
        self.page.goto(self.address)
        self.wait_until_shown()
        return self

    # -- what the page shows

    def caller(self) -> str:
        return self.page.locator(self.CALLER).inner_text()

    def work(self) -> str:
        return self.page.locator(self.WORK).inner_text()

    def transcript(self) -> str:
        return self.page.locator(self.TRANSCRIPT).inner_text()

    def thread(self) -> Locator:
        """The thread, oldest first, under its heading."""
        return self.page.locator(self.THREAD_SECTION)

    def thread_entries(self) -> list[str]:
        return [entry.inner_text() for entry in self.page.locator(self.THREAD_ENTRY).all()]

    def offers(self, action: str) -> bool:
        return self.form(action).count() == 1

    def form(self, action: str) -> Locator:
        return self.page.locator(self.FORM.format(action=action))

    def field(self, action: str, name: str) -> Locator:
        return self.form(action).locator(self.FIELD.format(action=action, field=name))

    def choices(self, action: str, name: str) -> list[str]:
        return [option.inner_text().strip() for option in self.field(action, name).locator("option").all()]

    # -- what the dispatcher does

    def play_recording(self, seconds: float = 1.0) -> float:
        """Press play on the recording's player, let it play `seconds`, pause: where the player stopped."""
        audio = self.page.locator(self.AUDIO)
        expect(audio).to_have_count(1)
        audio.evaluate("audio => audio.play()")
        audio.evaluate(
            """(audio, seconds) => new Promise((resolve, reject) => {
                const started = Date.now();
                (function check() {
                    if (audio.currentTime > seconds) return resolve();
                    if (audio.error) return reject(new Error("the player failed: " + audio.error.message));
                    if (Date.now() - started > 20000) return reject(new Error("the player did not play"));
                    setTimeout(check, 50);
                })();
            })""",
            seconds,
        )
        audio.evaluate("audio => audio.pause()")
        return float(audio.evaluate("audio => audio.currentTime"))

    def set_urgency(self, urgency: str, *, reason: str) -> TicketPage:
        self.field("urgency", "urgency").select_option(urgency)
        self.field("urgency", "reason").fill(reason)
        return self.submit("urgency")

    def match_caller(self, contact: str, *, save_number: bool = False) -> TicketPage:
        self.field("match", "contact").select_option(label=contact)
        self.field("match", "save_number").set_checked(save_number)
        return self.submit("match")

    def assign(self, technician: str, *, skill: str) -> TicketPage:
        """Choose the skill the ticket needs, then the technician (by name) who has it."""
        self.field("assign", "skill").select_option(skill)
        self.field("assign", "technician").select_option(label=self._option(("assign", "technician"), technician))
        return self.submit("assign")

    def technicians_offered(self) -> dict[str, list[str]]:
        """The assign form's technicians as the list groups them: {group label: names}, "" when not grouped."""
        select = self.field("assign", "technician")
        groups = select.locator("optgroup").all()
        if not groups:
            return {"": [o.inner_text().strip() for o in select.locator("option").all()]}
        return {
            (group.get_attribute("label") or ""): [o.inner_text().strip() for o in group.locator("option").all()]
            for group in groups
        }

    def set_restore_time(self, local_time: datetime) -> TicketPage:
        """The estimated restore time, on the help desk's clock (Europe/Rome), as the datetime-local input takes it."""
        self.field("estimate", "when").fill(local_time.strftime("%Y-%m-%dT%H:%M"))
        return self.submit("estimate")

    def move_to(self, phase: str) -> TicketPage:
        self.field("phase", "phase").select_option(phase)
        return self.submit("phase")

    def phases_offered(self) -> list[str]:
        return [o.get_attribute("value") or "" for o in self.field("phase", "phase").locator("option").all()]

    def submit(self, action: str) -> TicketPage:
        """Send the action's form; the page it comes back to must say it is done."""
        with self.page.expect_navigation(timeout=WAIT_MS):
            self.form(action).locator(self.SUBMIT).click()
        errors = self.page.locator(self.ERROR).all_inner_texts()
        assert not errors, f"{action} refused: {errors}"
        expect(self.page.locator(self.DONE)).to_be_visible()
        self.wait_until_shown()
        return self

    def _option(self, field: tuple[str, str], containing: str) -> str:
        """The label of the first option of `field` whose text contains `containing`."""
        for label in self.choices(*field):
            if containing in label:
                return label
        raise AssertionError(f"no {containing!r} among {self.choices(*field)}")


class StatisticsPage:
    """/console/stats (dispatchers only): a period's figures; the charts are SVG drawn by the server, each series
    a `g[data-series]` of bars, each chart with a table of the same figures under it."""

    PATH = "/console/stats"
    MENU_LINK = "header nav a[href$='/console/stats']"
    CHART = "svg#{chart}"
    SERIES = "svg#{chart} g[data-series]"
    BARS = "svg#{chart} g[data-series='{series}'] rect"
    FIGURE = "#stats-{table}-table tr[data-figure='{name}'] data"
    FROM = "form#stats-period input[name=from]"
    TO = "form#stats-period input[name=to]"
    SHOW = "form#stats-period button[type=submit]"
    DOWNLOAD = "a#stats-csv"

    def __init__(self, page: Page, url: str) -> None:
        self.page, self.url = page, url

    def open_from_the_menu(self) -> StatisticsPage:
        """Follow the navigation's link, from whatever console page is open."""
        self.page.click(self.MENU_LINK)
        self.wait_until_shown()
        return self

    def wait_until_shown(self) -> None:
        self.page.wait_for_url(re.compile(re.escape(self.url + self.PATH) + r"(\?.*)?$"), timeout=WAIT_MS)
        expect(self.page.locator(self.CHART.format(chart="stats-tickets-chart"))).to_be_visible()

    def choose_period(self, first: str, last: str) -> StatisticsPage:
        """Type the days (YYYY-MM-DD, as a date input takes them) and show the period."""
        self.page.fill(self.FROM, first)
        self.page.fill(self.TO, last)
        with self.page.expect_navigation(timeout=WAIT_MS):
            self.page.click(self.SHOW)
        self.wait_until_shown()
        return self

    def chart(self, chart: str) -> Locator:
        return self.page.locator(self.CHART.format(chart=chart))

    def series(self, chart: str) -> dict[str, int]:
        """{series: its bars} of a chart, as the browser has drawn it."""
        keys = [
            group.get_attribute("data-series") or ""
            for group in self.page.locator(self.SERIES.format(chart=chart)).all()
        ]
        return {key: self.bars(chart, key).count() for key in keys}

    def bars(self, chart: str, series: str) -> Locator:
        return self.page.locator(self.BARS.format(chart=chart, series=series))

    def figure(self, table: str, name: str) -> str:
        """A figure of a table under the charts (calls, to-number, worker), as its <data value> gives it."""
        return self.page.locator(self.FIGURE.format(table=table, name=name)).get_attribute("value") or ""

    def download_csv(self) -> Download:
        with self.page.expect_download(timeout=WAIT_MS) as download:
            self.page.click(self.DOWNLOAD)
        return download.value
