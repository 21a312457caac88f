"""Connect a Twilio number to the service through the REST API: its Voice URL, fallback URL and status callback.

`configure_number` finds the number on the account, sets the three webhooks (all POST),
clears a TwiML app or SIP trunk that would make Twilio ignore them, and returns what changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from storage.phones import to_e164

TWILIO_API = "https://api.twilio.com"

# The number's settings this command owns, as the IncomingPhoneNumber resource names them, and their labels.
WEBHOOK_FIELDS = {
    "voice_url": "Voice URL",
    "voice_method": "Voice method",
    "voice_fallback_url": "Fallback URL",
    "voice_fallback_method": "Fallback method",
    "status_callback": "Status callback",
    "status_callback_method": "Status callback method",
}
# Settings that make Twilio ignore the Voice URL: cleared when set.
OVERRIDING_FIELDS = {
    "voice_application_sid": "TwiML app (overrides the Voice URL)",
    "trunk_sid": "SIP trunk (overrides the Voice URL)",
}


class NumberError(Exception):
    """The number cannot be configured: not a number, not on the account, or Twilio refused."""


@dataclass(frozen=True)
class WebhookPaths:
    """The paths of the service's webhooks."""

    voice: str = "/twilio/voice"
    fallback: str = "/twilio/fallback"
    status: str = "/twilio/status"


@dataclass(frozen=True)
class Change:
    label: str
    old: str
    new: str


@dataclass(frozen=True)
class Configured:
    phone_number: str
    sid: str
    changes: list[Change]


def checked_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; NumberError unless it is an absolute http(s) URL."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NumberError(f"--base-url must be an absolute https URL like https://help.example.com, not {base_url!r}")
    if parts.query or parts.fragment:
        raise NumberError("--base-url must have no query or fragment")
    return base_url.strip().rstrip("/")


def wanted_webhooks(base_url: str, paths: WebhookPaths) -> dict[str, str]:
    return {
        "voice_url": base_url + paths.voice,
        "voice_method": "POST",
        "voice_fallback_url": base_url + paths.fallback,
        "voice_fallback_method": "POST",
        "status_callback": base_url + paths.status,
        "status_callback_method": "POST",
    }


def configure_number(client: Client, phone_number: str, base_url: str, paths: WebhookPaths) -> Configured:
    """Point the number's webhooks at `base_url`; what changed, old -> new."""
    number = find_number(client, phone_number)
    wanted = wanted_webhooks(checked_base_url(base_url), paths)
    wanted.update({name: "" for name in OVERRIDING_FIELDS if getattr(number, name, None)})
    try:
        updated = number.update(**wanted)
    except TwilioException as error:
        raise NumberError(refusal(error)) from None
    except requests.ConnectionError:
        raise NumberError("could not reach the Twilio API") from None
    labels = {**WEBHOOK_FIELDS, **OVERRIDING_FIELDS}
    changes = [
        Change(labels[name], getattr(number, name, None) or "", getattr(updated, name, None) or "")
        for name in wanted
        if (getattr(number, name, None) or "") != (getattr(updated, name, None) or "")
    ]
    return Configured(number.phone_number or phone_number, number.sid or "", changes)


def find_number(client: Client, phone_number: str) -> Any:
    """The IncomingPhoneNumber of the account with exactly this number (E.164, or as Italians write it)."""
    e164 = to_e164(phone_number)
    if e164 is None:
        raise NumberError(f"{phone_number!r} is not a phone number")
    try:
        candidates = client.api.v2010.account.incoming_phone_numbers.list(phone_number=e164, limit=20)
    except TwilioException as error:
        raise NumberError(refusal(error)) from None
    except requests.ConnectionError:
        raise NumberError("could not reach the Twilio API") from None
    for candidate in candidates:
        if candidate.phone_number == e164:
            return candidate
    raise NumberError(f"{e164} is not a phone number of the Twilio account {client.account_sid}")


def refusal(error: TwilioException) -> str:
    """What Twilio answered, from a REST error or from a list page it would not give."""
    if isinstance(error, TwilioRestException):
        status, code, message = error.status, error.code, error.msg
    else:  # TwilioException("Unable to fetch page", response)
        response = error.args[1] if len(error.args) > 1 else None
        status = getattr(response, "status_code", "?")
        try:
            body = json.loads(getattr(response, "text", "") or "{}")
        except ValueError:
            body = {}
        code, message = body.get("code", "?"), body.get("message", "no details")
    hint = ": check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" if status in (401, 403) else ""
    return f"Twilio refused the request (HTTP {status}, error {code}: {message}){hint}"


class RedirectedHttpClient(TwilioHttpClient):
    """Sends what is meant for https://api.twilio.com to `api_url` instead (a stand-in of the API)."""

    def __init__(self, api_url: str, timeout: float | None = None) -> None:
        super().__init__(timeout=timeout)
        self.api_url = api_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API):
            url = self.api_url + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)


def twilio_client(account_sid: str, auth_token: str, api_url: str = TWILIO_API, timeout: float | None = None) -> Client:
    """A REST client of the account, talking to Twilio (or to `api_url`, for tests); `timeout` per request, in s."""
    if api_url.rstrip("/") == TWILIO_API:
        http_client: TwilioHttpClient = TwilioHttpClient(timeout=timeout)
    else:
        http_client = RedirectedHttpClient(api_url, timeout)
    return Client(account_sid, auth_token, http_client=http_client)


def describe(configured: Configured, base_url: str) -> list[str]:
    """The lines that tell what changed."""
    if not configured.changes:
        return [f"{configured.phone_number} ({configured.sid}) already calls {base_url}: nothing changed"]
    width = max(len(change.label) for change in configured.changes)
    lines = [f"{configured.phone_number} ({configured.sid}) now calls {base_url}:"]
    lines += [f"  {c.label:<{width}}  {c.old or '(none)'} -> {c.new or '(none)'}" for c in configured.changes]
    return lines


def webhook_paths(app: Flask) -> WebhookPaths:
    """The webhook paths as the app routes them."""
    urls = app.url_map.bind("localhost")
    return WebhookPaths(urls.build("twilio.voice"), urls.build("twilio.fallback"), urls.build("twilio.status"))
