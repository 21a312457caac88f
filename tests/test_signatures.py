"""Only Twilio may drive the line: every webhook must carry a valid X-Twilio-Signature for the URL Twilio called."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from ivr import create_app
from ivr.settings import Secret
from ivr.voice.signature import algorithm_named, is_signed, signature_of, twilio_signed, with_and_without_port
from storage.models import Call, Ticket
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, BASE_URL, Twiml, call_params, sign

# Twilio's own published example of request validation.
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="

RECORDING_SID = "RE" + "c" * 32


def webhook_params(path: str) -> dict[str, str]:
    """What Twilio would post to `path`: enough that a request let through would write something."""
    params = call_params("CA" + uuid.uuid4().hex)
    recording = {
        "RecordingSid": RECORDING_SID,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{RECORDING_SID}",
        "RecordingDuration": "7",
    }
    if path == "/twilio/step/main_menu":
        params["Digits"] = "1"
    elif path == "/twilio/status":
        params.update(CallStatus="completed", CallDuration="42")
    elif path == "/twilio/recording":
        params.update(recording, RecordingStatus="completed")
    elif path == "/twilio/fallback":
        params.update(ErrorCode="11200")
    elif path == "/twilio/fallback/message":
        params.update(recording)
    return params


TWILIO_ROUTES = [
    "/twilio/voice",
    "/twilio/step/main_menu",
    "/twilio/status",
    "/twilio/recording",
    "/twilio/fallback",
    "/twilio/fallback/message",
]


def forged(kind: str, path: str, params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers of a request whose signature is bad in the way `kind` says."""
    url = BASE_URL + path
    if kind == "missing":
        return params, {}
    if kind == "wrong":
        return params, {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}
    if kind == "another token":
        return params, {"X-Twilio-Signature": sign(url, params, token="someone-elses-token")}
    if kind == "another url":
        return params, {"X-Twilio-Signature": sign("https://attacker.example.com" + path, params)}
    if kind == "tampered parameter":
        signature = sign(url, params)
        return {**params, "From": "+393471112233"}, {"X-Twilio-Signature": signature}
    raise AssertionError(kind)


def count(app, model) -> int:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        return session.scalar(select(func.count()).select_from(model))


def spooled(app) -> list:  # type: ignore[no-untyped-def]
    spool_dir = app.config["SETTINGS"].spool_dir
    return sorted(spool_dir.iterdir()) if spool_dir.exists() else []


@pytest.fixture
def make_app(settings):  # type: ignore[no-untyped-def]
    """Build more apps from changed settings; their engines are disposed of afterwards."""
    made = []

    def build(**changes):  # type: ignore[no-untyped-def]
        app = create_app(dataclasses.replace(settings, **changes))
        app.config["TESTING"] = True
        made.append(app)
        return app

    yield build
    for app in made:
        app.config["ENGINE"].dispose()


def test_twilio_reference_vector_computes_the_published_signature():
    validator = RequestValidator(VECTOR_TOKEN)
    assert validator.compute_signature(VECTOR_URL, VECTOR_PARAMS) == VECTOR_SIGNATURE
    assert validator.validate(VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE)


def test_our_hmac_computes_the_published_signature():
    assert signature_of(VECTOR_TOKEN.encode(), VECTOR_URL, VECTOR_PARAMS) == VECTOR_SIGNATURE
    assert is_signed(VECTOR_TOKEN.encode(), VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE)


# URLs as Twilio signs them: with and without the scheme's port, another port, a path prefix, a query.
SIGNED_URLS = [
    "https://mycompany.com/myapp.php?foo=1&bar=2",
    "https://mycompany.com:443/myapp.php?foo=1&bar=2",
    "http://mycompany.com/twilio/voice",
    "http://mycompany.com:80/twilio/voice",
    "https://help.example.com:8443/ivr/twilio/step/main_menu?event=silence&lang=en&try=1",
    "https://Help.Example.com/ivr/twilio/step/triage",
]


@pytest.mark.parametrize("url", SIGNED_URLS)
@pytest.mark.parametrize("signed_as", ["as given", "with port", "without port"])
def test_our_check_agrees_with_twilios_validator_with_and_without_the_port(url, signed_as):
    validator = RequestValidator(AUTH_TOKEN)
    with_port, without_port = with_and_without_port(url)
    signed_url = {"as given": url, "with port": with_port, "without port": without_port}[signed_as]
    params = {**VECTOR_PARAMS, "SpeechResult": "il server è fermo & non risponde"}
    signature = validator.compute_signature(signed_url, params)
    assert is_signed(AUTH_TOKEN.encode(), url, params, signature) == validator.validate(url, params, signature)
    assert is_signed(AUTH_TOKEN.encode(), url, params, signature)
    forged = {**params, "Digits": "9"}
    assert not is_signed(AUTH_TOKEN.encode(), url, forged, signature)
    assert not validator.validate(url, forged, signature)


@given(
    params=st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=20), max_size=6),
    port=st.sampled_from(["", ":443", ":8443"]),
    query=st.sampled_from(["", "?event=silence", "?a=1&b=%C3%A8"]),
)
@hypothesis_settings(max_examples=200, deadline=None)
def test_our_check_agrees_with_twilios_validator_on_any_form(params, port, query):
    url = f"https://ivr.example.com{port}/twilio/step/main_menu{query}"
    validator = RequestValidator(AUTH_TOKEN)
    for signature in (validator.compute_signature(url, params), sign(url, {**params, "x": "y"}), "bm90IGl0"):
        assert is_signed(AUTH_TOKEN.encode(), url, params, signature) == validator.validate(url, params, signature)


def test_repeated_form_fields_are_signed_as_twilio_signs_them():
    validator = RequestValidator(AUTH_TOKEN)
    form = MultiDict([("Digits", "2"), ("Digits", "1"), ("CallSid", "CA1"), ("Digits", "2")])
    url = "https://ivr.example.com/twilio/voice"
    signature = validator.compute_signature(url, form)
    assert signature_of(AUTH_TOKEN.encode(), url, form) == signature
    assert is_signed(AUTH_TOKEN.encode(), url, form, signature)


def test_a_json_body_is_signed_through_its_hash_in_the_url():
    validator = RequestValidator(AUTH_TOKEN)
    body = '{"CallSid": "CA1", "Digits": "1"}'
    url = f"https://ivr.example.com/twilio/voice?bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signature = validator.compute_signature(url, {})
    assert validator.validate(url, body, signature)
    assert is_signed(AUTH_TOKEN.encode(), url, body, signature)
    tampered = body.replace('"1"', '"2"')
    assert not validator.validate(url, tampered, signature)
    assert not is_signed(AUTH_TOKEN.encode(), url, tampered, signature)


def test_a_shared_key_signature_uses_the_algorithm_its_header_names():
    url = "https://ivr.example.com/twilio/voice"
    validator = RequestValidator(AUTH_TOKEN)
    signature = validator.compute_signature(url, VECTOR_PARAMS, "HMAC_SHA256")
    algorithm = algorithm_named("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256")
    assert algorithm == "HMAC_SHA256" and algorithm_named(None) == "HMAC_SHA1"
    assert is_signed(AUTH_TOKEN.encode(), url, VECTOR_PARAMS, signature, algorithm)
    assert not is_signed(AUTH_TOKEN.encode(), url, VECTOR_PARAMS, signature)  # not a SHA-1 signature
    assert not is_signed(AUTH_TOKEN.encode(), url, VECTOR_PARAMS, signature, "HMAC_MD5")


def test_our_decorator_accepts_the_published_example_request(settings):
    app = Flask(__name__)
    app.config["SETTINGS"] = dataclasses.replace(
        settings, twilio_auth_token=Secret(VECTOR_TOKEN), public_base_url="https://mycompany.com"
    )

    @app.post("/myapp.php")
    @twilio_signed
    def myapp() -> str:
        return "let in"

    client = app.test_client()
    accepted = client.post(
        "/myapp.php?foo=1&bar=2", data=VECTOR_PARAMS, headers={"X-Twilio-Signature": VECTOR_SIGNATURE}
    )
    assert accepted.status_code == 200 and accepted.get_data(as_text=True) == "let in"

    other_digits = client.post(
        "/myapp.php?foo=1&bar=2",
        data={**VECTOR_PARAMS, "Digits": "1235"},
        headers={"X-Twilio-Signature": VECTOR_SIGNATURE},
    )
    assert other_digits.status_code == 403
    other_query = client.post(
        "/myapp.php?foo=1&bar=3", data=VECTOR_PARAMS, headers={"X-Twilio-Signature": VECTOR_SIGNATURE}
    )
    assert other_query.status_code == 403


@pytest.mark.parametrize("path", TWILIO_ROUTES)
def test_every_twilio_route_answers_a_properly_signed_request(app, client, path):
    """The control for the refusals below: the same requests, signed right, are let in."""
    params = webhook_params(path)
    response = client.post(path, data=params, headers={"X-Twilio-Signature": sign(BASE_URL + path, params)})
    assert response.status_code in (200, 204), response.data


@pytest.mark.parametrize("kind", ["missing", "wrong", "another token", "another url", "tampered parameter"])
@pytest.mark.parametrize("path", TWILIO_ROUTES)
def test_a_badly_signed_webhook_is_refused_and_changes_nothing(app, client, path, kind):
    form, headers = forged(kind, path, webhook_params(path))
    response = client.post(path, data=form, headers=headers)
    assert response.status_code == 403
    assert "<Response" not in response.get_data(as_text=True)  # no TwiML for a forger
    assert count(app, Call) == 0
    assert count(app, Ticket) == 0
    assert spooled(app) == []


def test_behind_a_proxy_the_public_base_url_is_what_is_signed(app, client):
    """Twilio calls https://ivr.example.com/...; the app sees http://localhost/... behind the proxy."""
    path = "/twilio/voice"
    params = webhook_params(path)
    signed_public = client.post(
        path, base_url="http://localhost", data=params, headers={"X-Twilio-Signature": sign(BASE_URL + path, params)}
    )
    assert signed_public.status_code == 200
    assert "messaggi vengono registrati" in Twiml(signed_public.get_data(as_text=True)).said()

    signed_internal = client.post(
        path,
        base_url="http://localhost",
        data=params,
        headers={"X-Twilio-Signature": sign("http://localhost" + path, params)},
    )
    assert signed_internal.status_code == 403


def test_without_a_public_base_url_a_trusted_proxy_forwarded_headers_rebuild_the_url(make_app):
    app = make_app(public_base_url=None, trusted_proxies=1)
    client = app.test_client()
    path = "/twilio/voice"
    params = webhook_params(path)
    signature = {"X-Twilio-Signature": sign("https://ivr.example.com" + path, params)}
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ivr.example.com"}

    accepted = client.post(path, base_url="http://localhost", data=params, headers={**signature, **forwarded})
    assert accepted.status_code == 200
    welcome = Twiml(accepted.get_data(as_text=True))
    assert welcome.redirect_url().startswith("https://ivr.example.com/twilio/step/")  # callbacks go to the public URL

    without_headers = client.post(path, base_url="http://localhost", data=params, headers=signature)
    assert without_headers.status_code == 403


def test_without_trusted_proxies_forged_forwarded_headers_are_ignored(make_app):
    app = make_app(public_base_url=None, trusted_proxies=0)
    client = app.test_client()
    path = "/twilio/voice"
    params = webhook_params(path)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ivr.example.com"}

    forged_request = client.post(
        path,
        base_url="http://localhost",
        data=params,
        headers={"X-Twilio-Signature": sign("https://ivr.example.com" + path, params), **forwarded},
    )
    assert forged_request.status_code == 403
    assert count(app, Call) == 0

    # The URL the app really received is what counts.
    as_received = client.post(
        path,
        base_url="http://localhost",
        data=params,
        headers={"X-Twilio-Signature": sign("http://localhost" + path, params), **forwarded},
    )
    assert as_received.status_code == 200


def test_the_query_string_is_part_of_the_signed_url(app, client):
    path = "/twilio/step/main_menu"
    params = webhook_params(path)
    del params["Digits"]
    with_query = f"{BASE_URL}{path}?event=silence"

    accepted = client.post(
        f"{path}?event=silence", data=params, headers={"X-Twilio-Signature": sign(with_query, params)}
    )
    assert accepted.status_code == 200

    signed_without_query = client.post(
        f"{path}?event=silence", data=params, headers={"X-Twilio-Signature": sign(BASE_URL + path, params)}
    )
    assert signed_without_query.status_code == 403

    query_dropped = client.post(path, data=params, headers={"X-Twilio-Signature": sign(with_query, params)})
    assert query_dropped.status_code == 403

    query_changed = client.post(
        f"{path}?event=timeout", data=params, headers={"X-Twilio-Signature": sign(with_query, params)}
    )
    assert query_changed.status_code == 403


def test_the_app_token_is_the_one_that_signs(app, client):
    """A request signed with the configured auth token, for the public URL, is let in (sanity for the fixtures)."""
    assert app.config["SETTINGS"].twilio_auth_token == AUTH_TOKEN
    path = "/twilio/voice"
    params = webhook_params(path)
    response = client.post(path, data=params, headers={"X-Twilio-Signature": sign(BASE_URL + path, params)})
    assert response.status_code == 200
    assert count(app, Call) == 1
