"""The JSON API a dispatcher uses: a ticket by number, a caller's tickets, behind a bearer token."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from redis import Redis

from ivr.status_guard import RedisStatusGuard
from storage.pins import set_customer_pin
from storage.ticket_numbers import check_digit, is_valid
from tests.conftest import ANNA, API_TOKEN, GIULIA, STRANGER

pytestmark = pytest.mark.usefixtures("directory")

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def open_ticket(caller, from_: str = GIULIA) -> str:  # type: ignore[no-untyped-def]
    """Play a call that opens a ticket (everything stopped) and return the number the caller heard."""
    call = caller(from_)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak()
    opened = call.press("1")
    groups = [
        e.text.strip() for e in opened.root.iter("Say") if e.text and re.fullmatch(r"\d(, \d)*\.", e.text.strip())
    ]
    return "".join(ch for text in groups for ch in text if ch.isdigit())


def test_a_ticket_is_found_by_the_number_the_caller_heard(client, caller):
    number = open_ticket(caller)
    assert is_valid(number)

    response = client.get(f"/api/tickets/{number}", headers=AUTH)
    assert response.status_code == 200
    assert response.is_json
    ticket = response.get_json()
    assert ticket["number"] == number
    assert ticket["status"] == "received"
    assert ticket["urgency"] == "critical"  # everything stopped, premium SLA
    assert ticket["channel"] == "phone"
    assert ticket["caller"] == GIULIA
    assert ticket["customer_code"] == "1001"
    assert ticket["customer_name"] == "Officine Brambilla"
    assert ticket["contact_email"] == "giulia.rossi@brambilla.example.it"
    assert ticket["voicemail"] is False
    assert ticket["needs_match"] is False
    assert ticket["transcript"] is None  # not transcribed yet
    assert ticket["language"] == "it"

    created = datetime.fromisoformat(ticket["created_at"])
    events = ticket["events"]
    assert events, "the thread has at least the opening"
    assert all(set(event) >= {"kind", "at", "facts", "text"} for event in events)
    assert events[0]["kind"] == "opened"
    assert events[0]["facts"]["urgency"] == "critical"
    assert "urgenza provvisoria critica" in events[0]["text"]  # in Italian unless asked otherwise
    times = [datetime.fromisoformat(event["at"]) for event in events]
    assert times == sorted(times)  # oldest first
    assert abs((times[0] - created).total_seconds()) < 60


def test_events_are_listed_oldest_first(app, client, caller):
    from sqlalchemy import select

    from storage.models import Ticket
    from storage.tickets import record_event

    number = open_ticket(caller)
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        record_event(session, ticket, "note", note="Called the customer back.")
    events = client.get(f"/api/tickets/{number}", headers=AUTH).get_json()["events"]
    assert events[0]["kind"] == "opened"
    note = {"note": "Called the customer back."}
    assert events[-1] == {"kind": "note", "at": events[-1]["at"], "facts": note, "text": "Called the customer back."}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Bearer {API_TOKEN}x"},
        {"Authorization": f"Token {API_TOKEN}"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": API_TOKEN},
        {"Authorization": "Bearer "},
    ],
    ids=["no header", "wrong token", "token with extra", "Token scheme", "Basic scheme", "bare token", "empty bearer"],
)
def test_without_the_right_bearer_token_the_api_answers_401(client, caller, headers):
    number = open_ticket(caller)
    for path in (f"/api/tickets/{number}", f"/api/tickets?caller={GIULIA.replace('+', '%2B')}"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers.get("WWW-Authenticate") == "Bearer"
        body = response.get_json()
        assert "error" in body and number not in response.get_data(as_text=True)


def test_an_unknown_ticket_number_is_404_in_json(client, caller):
    open_ticket(caller)
    response = client.get("/api/tickets/9999990", headers=AUTH)
    assert response.status_code == 404
    assert response.is_json and "error" in response.get_json()


@pytest.mark.parametrize("written", [GIULIA, "0392301122", "039 2301122", "0039 039 2301122"])
def test_a_callers_tickets_are_listed_by_phone_number(client, caller, written):
    first = open_ticket(caller, GIULIA)
    second = open_ticket(caller, GIULIA)
    other = open_ticket(caller, ANNA)

    response = client.get("/api/tickets", query_string={"caller": written}, headers=AUTH)
    assert response.status_code == 200
    listed = response.get_json()["tickets"]
    numbers = [ticket["number"] for ticket in listed]
    assert sorted(numbers) == sorted([first, second])
    assert numbers[0] == second  # newest first
    assert other not in numbers
    assert all(ticket["caller"] == GIULIA for ticket in listed)


def test_a_caller_without_tickets_gets_an_empty_list(client, caller):
    open_ticket(caller, GIULIA)
    response = client.get("/api/tickets", query_string={"caller": "+393471112233"}, headers=AUTH)
    assert response.status_code == 200
    assert response.get_json() == {"tickets": []}


@pytest.mark.parametrize("value", ["not-a-number", "12", "+39", "", None])
def test_a_bad_caller_value_is_400(client, value):
    query = {} if value is None else {"caller": value}
    response = client.get("/api/tickets", query_string=query, headers=AUTH)
    assert response.status_code == 400
    assert response.is_json and "error" in response.get_json()


# -- the status of a ticket, under the line's rule ----------------------------------------------

MARCO = "+393331234567"  # Giulia's colleague at Officine Brambilla
PIN = "2468"  # Officine Brambilla's phone PIN


@pytest.fixture
def giulias_ticket(app, caller, settings) -> str:  # type: ignore[no-untyped-def]
    """A ticket of Officine Brambilla, whose PIN is set; the status counters are cleaned afterwards."""
    number = open_ticket(caller, GIULIA)
    with app.config["SESSIONMAKER"]() as session, session.begin():
        set_customer_pin(session, "1001", PIN)
    yield number
    redis = Redis.from_url(settings.redis_url)
    for key in redis.scan_iter(f"ivr:{settings.queue_name}:status:*"):
        redis.delete(key)


def status_url(number: str) -> str:
    return f"/api/tickets/{number}/status"


def test_a_pin_in_the_query_string_is_refused_changes_nothing_and_is_not_logged(
    app, client, giulias_ticket, settings, caplog
):
    caplog.set_level("DEBUG")
    redis = Redis.from_url(settings.redis_url)
    before = sorted(redis.scan_iter(f"ivr:{settings.queue_name}:status:*"))
    for method in (client.get, client.post):
        response = method(status_url(giulias_ticket), query_string={"caller": ANNA, "pin": PIN}, headers=AUTH)
        assert response.status_code == 400
        assert "X-Ticket-PIN" in response.get_json()["error"]
        assert PIN not in response.get_data(as_text=True)
    assert sorted(redis.scan_iter(f"ivr:{settings.queue_name}:status:*")) == before  # no attempt counted
    assert PIN not in caplog.text


def test_the_pin_is_taken_from_the_x_ticket_pin_header(client, giulias_ticket):
    response = client.get(
        status_url(giulias_ticket), query_string={"caller": ANNA, "lang": "en"}, headers={**AUTH, "X-Ticket-PIN": PIN}
    )
    assert response.status_code == 200
    assert response.get_json()["phase"] == "received" and "Status: received" in response.get_json()["said"]


@pytest.mark.parametrize("body", ["json", "form"])
def test_the_pin_is_taken_from_a_post_body(client, giulias_ticket, body):
    fields = {"caller": ANNA, "pin": PIN, "lang": "it"}
    sent = {"json": fields} if body == "json" else {"data": fields}
    response = client.post(status_url(giulias_ticket), headers=AUTH, **sent)
    assert response.status_code == 200 and "Stato: ricevuta" in response.get_json()["said"]


def test_a_contact_by_number_needs_no_pin_and_others_get_one_404_for_unknown_not_yours_and_a_wrong_pin(
    client, giulias_ticket
):
    own = client.post(status_url(giulias_ticket), json={"caller": MARCO}, headers=AUTH)
    assert own.status_code == 200 and own.get_json()["number"] == giulias_ticket
    unknown = "7654321" + check_digit("7654321")
    answers = [
        client.post(status_url(giulias_ticket), json={"caller": ANNA}, headers=AUTH),
        client.post(status_url(giulias_ticket), json={"caller": ANNA, "pin": "1111"}, headers=AUTH),
        client.post(status_url(unknown), json={"caller": ANNA}, headers=AUTH),
        client.post(status_url(unknown), json={"caller": ANNA, "pin": "1111"}, headers=AUTH),
        client.post(status_url("12345"), json={"caller": ANNA, "pin": "1111"}, headers=AUTH),  # wrong check digit
    ]
    assert {(a.status_code, a.get_data(as_text=True)) for a in answers} == {(404, answers[0].get_data(as_text=True))}
    assert client.post(status_url(giulias_ticket), json={"caller": MARCO}).status_code == 401


def test_the_api_and_the_phone_spend_one_budget(client, caller, giulias_ticket):
    for _ in range(4):
        wrong = client.post(status_url(giulias_ticket), json={"caller": STRANGER, "pin": "1111"}, headers=AUTH)
        assert wrong.status_code == 404
    call = caller(STRANGER)  # the fifth wrong PIN, by phone
    call.dial_in(), call.stay_silent(), call.stay_silent(), call.press("2"), call.press(giulias_ticket + "#")
    assert "per un'ora" in call.press("1111#").said()
    locked = client.post(status_url(giulias_ticket), json={"caller": STRANGER, "pin": PIN}, headers=AUTH)
    assert locked.status_code == 423 and "error" in locked.get_json()
    # A locked caller or ticket says so (the line does too); the customer's own contacts still hear it.
    assert client.post(status_url(giulias_ticket), json={"caller": GIULIA}, headers=AUTH).status_code == 200


def test_without_a_caller_the_api_counts_as_a_withheld_call(client, giulias_ticket):
    for _ in range(5):
        client.post(status_url(giulias_ticket), json={"pin": "1111"}, headers=AUTH)
    unknown = "7654321" + check_digit("7654321")
    assert client.post(status_url(unknown), json={"pin": "1111"}, headers=AUTH).status_code == 423


def test_with_redis_unreachable_the_status_api_answers_503_and_tells_nothing(app, client, giulias_ticket):
    app.config["STATUS_GUARD"] = RedisStatusGuard(Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2), "x")
    response = client.post(status_url(giulias_ticket), json={"caller": ANNA, "pin": PIN}, headers=AUTH)
    assert response.status_code == 503 and giulias_ticket not in response.get_data(as_text=True)
