"""`flask configure-number` against a local stand-in of Twilio's REST API: the requests it makes,
and what it tells the user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from ivr import create_app
from ivr.settings import Secret, Settings
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, posted_form, reply_json, serve_on_loopback, twilio_basic_auth

NUMBER_SID = "PN" + "a" * 32
LINE_NUMBER = "+390392847438"
NUMBERS_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers"


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]


@dataclass
class TwilioApi:
    """Twilio's IncomingPhoneNumbers API for one account, on loopback, keeping the requests it receives."""

    numbers: dict[str, dict[str, object]]
    auth_token: str = AUTH_TOKEN
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.httpd, self.url = serve_on_loopback(self.handle)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        form = posted_form(request)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.received.append(Received(request.command, parts.path, query, form))
        if request.headers.get("Authorization") != twilio_basic_auth(self.auth_token):
            return reply_json(request, 401, {"code": 20003, "message": "Authenticate", "status": 401})
        if request.command == "GET" and parts.path == f"{NUMBERS_PATH}.json":
            wanted = query.get("PhoneNumber", "")
            found = [n for n in self.numbers.values() if n["phone_number"] == wanted]
            return reply_json(request, 200, page(found))
        sid = parts.path.removeprefix(f"{NUMBERS_PATH}/").removesuffix(".json")
        if request.command == "POST" and sid in self.numbers:
            number = self.numbers[sid]
            for name, value in form.items():
                number[snake_case(name)] = value or None
            return reply_json(request, 200, number)
        return reply_json(
            request, 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}
        )

    def updates(self) -> list[Received]:
        return [r for r in self.received if r.method == "POST"]

    def close(self) -> None:
        self.httpd.shutdown()


def page(numbers: list[dict[str, object]]) -> dict[str, object]:
    return {
        "incoming_phone_numbers": numbers,
        "first_page_uri": f"{NUMBERS_PATH}.json?PageSize=20&Page=0",
        "next_page_uri": None,
        "previous_page_uri": None,
        "page": 0,
        "page_size": 20,
        "start": 0,
        "end": len(numbers) - 1,
        "uri": f"{NUMBERS_PATH}.json?PageSize=20&Page=0",
    }


def snake_case(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def line_number(**overrides: object) -> dict[str, object]:
    """The help desk's number as Twilio describes it, set up by hand in the console long ago."""
    return {
        "sid": NUMBER_SID,
        "account_sid": ACCOUNT_SID,
        "phone_number": LINE_NUMBER,
        "friendly_name": "039 2847438",
        "voice_url": "https://old-host.example.com/voice",
        "voice_method": "GET",
        "voice_fallback_url": None,
        "voice_fallback_method": "POST",
        "status_callback": "",
        "status_callback_method": "POST",
        "voice_application_sid": None,
        "trunk_sid": None,
        "uri": f"{NUMBERS_PATH}/{NUMBER_SID}.json",
        **overrides,
    }


@pytest.fixture
def twilio() -> Iterator[TwilioApi]:
    api = TwilioApi({NUMBER_SID: line_number()})
    yield api
    api.close()


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Runs `flask configure-number ...` with the account's credentials in the settings."""
    settings = Settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=Secret(AUTH_TOKEN),
        api_token=Secret("test-api-token"),
        secret_key=Secret("test-secret-key"),
        database_url=f"sqlite:///{tmp_path / 'ivr.db'}",
        public_base_url="https://help.example.com",
    )
    app = create_app(settings)
    yield lambda *args: app.test_cli_runner().invoke(args=["configure-number", *args])
    app.config["ENGINE"].dispose()


def test_sets_the_voice_url_fallback_url_and_status_callback(cli, twilio):
    outcome = cli(LINE_NUMBER, "--base-url", "https://help.example.com", "--api-url", twilio.url)

    assert outcome.exit_code == 0, outcome.output
    lookup, update = twilio.received
    assert (lookup.method, lookup.path, lookup.query["PhoneNumber"]) == ("GET", f"{NUMBERS_PATH}.json", LINE_NUMBER)
    assert (update.method, update.path) == ("POST", f"{NUMBERS_PATH}/{NUMBER_SID}.json")
    assert update.form == {
        "VoiceUrl": "https://help.example.com/twilio/voice",
        "VoiceMethod": "POST",
        "VoiceFallbackUrl": "https://help.example.com/twilio/fallback",
        "VoiceFallbackMethod": "POST",
        "StatusCallback": "https://help.example.com/twilio/status",
        "StatusCallbackMethod": "POST",
    }


def test_prints_what_changed_old_to_new(cli, twilio):
    outcome = cli(LINE_NUMBER, "--base-url", "https://help.example.com/", "--api-url", twilio.url)

    assert outcome.stdout.splitlines() == [
        f"{LINE_NUMBER} ({NUMBER_SID}) now calls https://help.example.com:",
        "  Voice URL        https://old-host.example.com/voice -> https://help.example.com/twilio/voice",
        "  Voice method     GET -> POST",
        "  Fallback URL     (none) -> https://help.example.com/twilio/fallback",
        "  Status callback  (none) -> https://help.example.com/twilio/status",
    ]
    assert AUTH_TOKEN not in outcome.output


def test_a_second_run_changes_nothing(cli, twilio):
    cli(LINE_NUMBER, "--base-url", "https://help.example.com", "--api-url", twilio.url)
    outcome = cli(LINE_NUMBER, "--base-url", "https://help.example.com", "--api-url", twilio.url)

    assert outcome.exit_code == 0
    assert outcome.stdout == f"{LINE_NUMBER} ({NUMBER_SID}) already calls https://help.example.com: nothing changed\n"


def test_the_number_can_be_written_the_italian_way_and_the_base_url_comes_from_public_base_url(cli, twilio):
    outcome = cli("039 2847438", "--api-url", twilio.url)

    assert outcome.exit_code == 0, outcome.output
    assert twilio.received[0].query["PhoneNumber"] == LINE_NUMBER
    assert twilio.updates()[0].form["VoiceUrl"] == "https://help.example.com/twilio/voice"
    assert "PUBLIC_BASE_URL" not in outcome.stderr  # it is the base URL already


def test_a_twiml_app_that_would_override_the_voice_url_is_cleared(cli):
    twilio = TwilioApi({NUMBER_SID: line_number(voice_application_sid="AP" + "b" * 32)})
    try:
        outcome = cli(LINE_NUMBER, "--base-url", "https://help.example.com", "--api-url", twilio.url)
    finally:
        twilio.close()

    assert outcome.exit_code == 0, outcome.output
    assert twilio.updates()[0].form["VoiceApplicationSid"] == ""
    assert f"TwiML app (overrides the Voice URL)  AP{'b' * 32} -> (none)" in outcome.stdout


def test_another_base_url_than_public_base_url_is_pointed_out(cli, twilio):
    outcome = cli(LINE_NUMBER, "--base-url", "https://tunnel.example.net", "--api-url", twilio.url)

    assert outcome.exit_code == 0
    assert "set PUBLIC_BASE_URL=https://tunnel.example.net where the service runs" in outcome.stderr


def test_a_number_not_on_the_account_is_an_error_and_changes_nothing(cli, twilio):
    outcome = cli("+390212345678", "--base-url", "https://help.example.com", "--api-url", twilio.url)

    assert outcome.exit_code != 0
    assert f"+390212345678 is not a phone number of the Twilio account {ACCOUNT_SID}" in outcome.stderr
    assert twilio.updates() == []


def test_wrong_credentials_are_reported_without_showing_them(cli):
    twilio = TwilioApi({NUMBER_SID: line_number()}, auth_token="the-real-token")
    try:
        outcome = cli(LINE_NUMBER, "--base-url", "https://help.example.com", "--api-url", twilio.url)
    finally:
        twilio.close()

    assert outcome.exit_code != 0
    assert "Twilio refused the request (HTTP 401, error 20003: Authenticate)" in outcome.stderr
    assert "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in outcome.stderr
    assert AUTH_TOKEN not in outcome.output
    assert twilio.updates() == []


@pytest.mark.parametrize("base_url", ["ftp://help.example.com", "help.example.com", "https://help.example.com/?x=1"])
def test_a_base_url_that_is_not_an_http_url_is_refused_before_calling_twilio(cli, twilio, base_url):
    outcome = cli(LINE_NUMBER, "--base-url", base_url, "--api-url", twilio.url)

    assert outcome.exit_code != 0
    assert "--base-url must" in outcome.stderr
    assert twilio.updates() == []


def test_something_that_is_not_a_phone_number_is_refused(cli, twilio):
    outcome = cli("help-desk", "--base-url", "https://help.example.com", "--api-url", twilio.url)

    assert outcome.exit_code != 0
    assert "'help-desk' is not a phone number" in outcome.stderr
    assert twilio.received == []
