"""Behind a proxy that serves the app under a path (https://help.example.com/ivr), the path counts once.

PUBLIC_BASE_URL is the public URL of the app's root, prefix included. A trusted proxy may
also say X-Forwarded-Prefix: /ivr (ProxyFix then sets the script root): neither the URL we
check Twilio's signature against nor the URLs we hand Twilio in TwiML may carry /ivr twice.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest
from flask import Flask

from ivr import create_app
from ivr.settings import Settings
from storage.contacts import import_contacts
from tests.conftest import DIRECTORY_CSV, call_params, sign

PUBLIC_ROOT = "https://help.example.com/ivr"
PREFIX = "/ivr"
DOUBLED_ROOT = "https://help.example.com/ivr/ivr"
FROM_THE_PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "help.example.com", "X-Forwarded-Prefix": PREFIX}
# A proxy that strips /ivr and says nothing about it.
SILENT_PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "help.example.com"}


@pytest.fixture
def make_app(settings: Settings) -> Iterator:  # type: ignore[type-arg]
    """An app behind one trusted proxy, with the demo directory loaded; disposed of afterwards."""
    made: list[Flask] = []

    def build(**changes: object) -> Flask:
        app = create_app(dataclasses.replace(settings, trusted_proxies=1, **changes))  # type: ignore[arg-type]
        app.config["TESTING"] = True
        with app.config["SESSIONMAKER"]() as session, session.begin():
            import_contacts(session, DIRECTORY_CSV)
        made.append(app)
        return app

    yield build
    for app in made:
        app.config["ENGINE"].dispose()


def through_the_proxy(app: Flask, public_url: str, params: dict[str, str], headers: dict[str, str], signed_for: str):  # type: ignore[no-untyped-def]
    """POST as the proxy forwards Twilio's request for `public_url`: the prefix stripped from the path."""
    assert public_url.startswith(PUBLIC_ROOT + "/")
    inside_the_app = public_url[len(PUBLIC_ROOT) :]
    return app.test_client().post(
        inside_the_app,
        base_url="http://127.0.0.1:5000",
        data=params,
        headers={**headers, "X-Twilio-Signature": sign(signed_for, params)},
    )


def callback_urls(body: bytes) -> list[str]:
    """Every URL in a TwiML answer: attributes (action, recordingStatusCallback) and Redirect texts."""
    root = ElementTree.fromstring(body)
    urls = []
    for element in root.iter():
        urls += [value for value in element.attrib.values() if value.startswith("http")]
        if element.tag == "Redirect" and element.text:
            urls.append(element.text.strip())
    return urls


def assert_prefix_once(body: bytes) -> list[str]:
    urls = callback_urls(body)
    assert urls, body
    for url in urls:
        assert url.startswith(PUBLIC_ROOT + "/twilio/"), url
        assert url.count("/ivr/twilio/") == 1 and "/ivr/ivr/" not in url, url
    return urls


def first(urls: list[str], part: str) -> str:
    return next(url for url in urls if part in url)


@pytest.mark.parametrize("headers", [FROM_THE_PROXY, SILENT_PROXY], ids=["x-forwarded-prefix", "no prefix header"])
def test_a_call_behind_a_path_prefix_is_let_in_and_every_callback_url_has_the_prefix_once(make_app, headers):
    app = make_app(public_base_url=PUBLIC_ROOT)
    call_sid = "CA" + uuid.uuid4().hex

    def post(url: str, **extra: str):  # type: ignore[no-untyped-def]
        params = call_params(call_sid, **extra)
        response = through_the_proxy(app, url, params, headers, signed_for=url)
        assert response.status_code == 200, (url, response.data)
        return response

    welcome = post(f"{PUBLIC_ROOT}/twilio/voice", CallStatus="ringing")
    urls = assert_prefix_once(welcome.data)
    main_menu = post(first(urls, "event=silence"))  # silence at the welcome: Giulia is greeted
    urls = assert_prefix_once(main_menu.data)
    triage = post(first(urls, "/twilio/step/main_menu"), Digits="1")
    urls = assert_prefix_once(triage.data)
    describe = post(first(urls, "/twilio/step/triage"), Digits="1")
    urls = assert_prefix_once(describe.data)
    assert any("/twilio/recording" in url for url in urls)  # the recording status callback too
    apology = post(f"{PUBLIC_ROOT}/twilio/fallback", ErrorCode="11200")
    assert any("/twilio/fallback/message" in url for url in assert_prefix_once(apology.data))


@pytest.mark.parametrize("headers", [FROM_THE_PROXY, SILENT_PROXY], ids=["x-forwarded-prefix", "no prefix header"])
def test_a_request_signed_for_the_doubled_prefix_is_refused(make_app, headers):
    app = make_app(public_base_url=PUBLIC_ROOT)
    params = call_params("CA" + uuid.uuid4().hex)
    url = f"{PUBLIC_ROOT}/twilio/voice"
    refused = through_the_proxy(app, url, params, headers, signed_for=f"{DOUBLED_ROOT}/twilio/voice")
    assert refused.status_code == 403
    let_in = through_the_proxy(app, url, params, headers, signed_for=url)
    assert let_in.status_code == 200


def test_a_trailing_slash_on_the_public_base_url_does_not_double_the_slash(make_app):
    app = make_app(public_base_url=PUBLIC_ROOT + "/")
    params = call_params("CA" + uuid.uuid4().hex)
    url = f"{PUBLIC_ROOT}/twilio/voice"
    response = through_the_proxy(app, url, params, FROM_THE_PROXY, signed_for=url)
    assert response.status_code == 200
    assert all("//twilio" not in u for u in assert_prefix_once(response.data))


def test_without_a_public_base_url_the_forwarded_prefix_rebuilds_the_url_once(make_app):
    app = make_app(public_base_url=None)
    params = call_params("CA" + uuid.uuid4().hex)
    url = f"{PUBLIC_ROOT}/twilio/voice"

    accepted = through_the_proxy(app, url, params, FROM_THE_PROXY, signed_for=url)
    assert accepted.status_code == 200
    assert_prefix_once(accepted.data)

    doubled = through_the_proxy(app, url, params, FROM_THE_PROXY, signed_for=f"{DOUBLED_ROOT}/twilio/voice")
    assert doubled.status_code == 403
