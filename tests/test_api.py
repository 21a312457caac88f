"""The JSON API a dispatcher uses: a ticket by number, a caller's tickets, behind a bearer token."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from storage.ticket_numbers import is_valid
from tests.conftest import ANNA, API_TOKEN, GIULIA

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
    assert all(set(event) >= {"kind", "at", "text"} for event in events)
    assert events[0]["kind"] == "opened"
    assert "critical" in events[0]["text"]
    times = [datetime.fromisoformat(event["at"]) for event in events]
    assert times == sorted(times)  # oldest first
    assert abs((times[0] - created).total_seconds()) < 60


def test_events_are_listed_oldest_first(app, client, caller):
    from sqlalchemy import select

    from storage.models import Ticket, utcnow
    from storage.tickets import record_event

    number = open_ticket(caller)
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        record_event(session, ticket, "note", "Called the customer back.", at=utcnow())
    events = client.get(f"/api/tickets/{number}", headers=AUTH).get_json()["events"]
    assert events[0]["kind"] == "opened"
    assert events[-1] == {"kind": "note", "at": events[-1]["at"], "text": "Called the customer back."}


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
