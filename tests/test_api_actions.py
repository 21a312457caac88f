"""The actions on a ticket through the JSON API: the same rules as the console, as the user the body names, one
transaction each; and what the console (or the API) sets is what the line reads to the caller (issue 9, point 5)."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from helpdesk.roles import ACTIONS
from ivr.api import API_ACTIONS
from storage.models import Contact, Ticket, User
from tests import test_ticket_actions as rules
from tests.conftest import API_TOKEN, GIULIA, STRANGER
from tests.test_ticket_actions import GIULIA_EMAIL, MARCO_EMAIL, People, open_ticket, rome

pytestmark = pytest.mark.usefixtures("directory")

people = rules.people  # the fixture: the same people as the rules' tests

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
DORA = "dora@helpdesk.example.it"  # the dispatcher of the `people` fixture
LUCA = "luca@helpdesk.example.it"  # a technician


def post(client, number: str, action: str, body: Any, *, query: str = "", headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/tickets/{number}/actions/{action}{query}", json=body, headers=AUTH if headers is None else headers
    )


def thread_of(client, number: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return client.get(f"/api/tickets/{number}", headers=AUTH).get_json()["events"]


def test_the_api_offers_every_action_of_the_rules():
    assert set(API_ACTIONS) == ACTIONS


def test_each_action_through_the_api_changes_the_ticket_and_answers_with_it(app, client, people: People):
    number = open_ticket(app)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("change_urgency", {"urgency": "high", "reason": "Reparto fermo"}),
        ("move_phase", {"phase": "triage"}),
        ("set_estimate", {"when": rome(days=1).isoformat()}),
        ("assign", {"technician_id": people.luca, "skill": "network"}),
        ("escalate", {"vendor": "Stampanti SpA", "reference": "ST-4711", "restore_at": rome(days=2).isoformat()}),
        ("lend_device", {"device": "Notebook NB-07"}),
        ("return_device", {}),
        ("add_note", {"text": "Richiamato il cliente."}),
        ("reply", {"text": "Il tecnico arriva domattina."}),
        ("move_phase", {"phase": "resolved"}),
        ("close", {}),
    ]
    kinds = []
    for action, fields in steps:
        answer = post(client, number, action, {"as": DORA, **fields}, query="?lang=en")
        assert answer.status_code == 200, (action, answer.get_json())
        kinds.append(answer.get_json()["events"][-1]["kind"])
    assert kinds == [
        "urgency_set",
        "phase_moved",
        "restore_estimated",
        "assigned",
        "escalated",
        "device_lent",
        "device_returned",
        "note",
        "reply",
        "phase_moved",
        "phase_moved",
    ]
    ticket = answer.get_json()
    assert ticket["status"] == "closed" and ticket["urgency"] == "high" and ticket["technician"] == "Luca Ferrari"
    assert ticket["events"][-1]["text"] == "Phase moved from resolved to closed."
    with app.config["SESSIONMAKER"]() as session:
        row = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        assert row.vendor_reference == "ST-4711" and row.skill_needed == "network" and row.closed_at is not None
        dora = session.scalars(select(User).where(User.email == DORA)).one()
        assert {event.user_id for event in row.events if event.kind in kinds} == {dora.id}


def test_matching_a_caller_through_the_api(app, client, people: People):
    number = open_ticket(app, STRANGER)
    with app.config["SESSIONMAKER"]() as session:
        giulia = session.scalars(select(Contact.id).where(Contact.email == GIULIA_EMAIL)).one()
    answer = post(client, number, "match_caller", {"as": DORA, "contact_id": giulia, "save_number": True})
    assert answer.status_code == 200
    ticket = answer.get_json()
    assert ticket["needs_match"] is False and ticket["contact_email"] == GIULIA_EMAIL
    assert ticket["events"][-1]["text"].startswith("Chiamante associato a Giulia Rossi (Officine Brambilla).")


def test_a_refused_action_answers_400_with_the_field_and_changes_nothing(app, client, people: People):
    number = open_ticket(app)
    before = thread_of(client, number)
    answer = post(client, number, "move_phase", {"as": DORA, "phase": "intervention"}, query="?lang=en")
    assert answer.status_code == 400
    assert answer.get_json() == {
        "field": "phase",
        "code": "phase_move_forbidden",
        "error": "A ticket in received cannot move to intervention.",
    }
    answer = post(client, number, "move_phase", {"as": DORA, "phase": "resolved"})
    assert answer.get_json() == {
        "field": "phase",
        "code": "phase_move_forbidden",
        "error": "Una richiesta in fase ricevuta non può passare a risolta.",
    }
    answer = post(client, number, "change_urgency", {"as": DORA, "urgency": "critical"})
    assert (answer.status_code, answer.get_json()["field"], answer.get_json()["code"]) == (
        400,
        "reason",
        "reason_required",
    )
    assert thread_of(client, number) == before


def test_a_forbidden_action_answers_403_and_changes_nothing(app, client, people: People):
    number = open_ticket(app)
    before = thread_of(client, number)
    answer = post(client, number, "add_note", {"as": LUCA, "text": "not my ticket"})
    assert answer.status_code == 403 and answer.get_json()["code"] == "not_permitted"
    post(client, number, "assign", {"as": DORA, "technician_id": people.luca})
    assert post(client, number, "add_note", {"as": LUCA, "text": "mine now"}).status_code == 200
    assert post(client, number, "change_urgency", {"as": LUCA, "urgency": "low", "reason": "r"}).status_code == 403
    assert post(client, number, "close", {"as": LUCA}).status_code == 403
    assert len(thread_of(client, number)) == len(before) + 2


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "as", "required"),
        ({"as": "nobody@helpdesk.example.it"}, "as", "unknown_user"),
        ({"as": "gino@helpdesk.example.it"}, "as", "unknown_user"),  # disabled
        ({"as": 42}, "as", "not_text"),
        ([DORA], None, "not_a_json_object"),
    ],
)
def test_who_acts_must_be_an_active_user(app, client, people: People, body, field, code):
    number = open_ticket(app)
    answer = post(client, number, "add_note", {**body, "text": "hello"} if isinstance(body, dict) else body)
    assert answer.status_code == 400
    assert (answer.get_json()["field"], answer.get_json()["code"]) == (field, code)


@pytest.mark.parametrize(
    ("action", "fields", "field", "code"),
    [
        ("assign", {"technician_id": "2"}, "technician_id", "not_a_whole_number"),
        ("assign", {}, "technician_id", "required"),
        ("match_caller", {"contact_id": 1, "save_number": "yes"}, "save_number", "not_true_or_false"),
        ("set_estimate", {"when": "tomorrow"}, "when", "not_a_time"),
        ("set_estimate", {"when": "2099-12-01T14:30:00"}, "when", "time_zone_required"),
        ("set_estimate", {"when": "2001-12-01T14:30:00Z"}, "when", "not_in_future"),
        ("add_note", {"text": ["a", "list"]}, "text", "not_text"),
        ("add_note", {"text": "hi", "priority": "high"}, "priority", "unknown_field"),
    ],
)
def test_fields_of_the_wrong_shape_are_refused_by_name(app, client, people: People, action, fields, field, code):
    number = open_ticket(app, STRANGER)
    answer = post(client, number, action, {"as": DORA, **fields})
    assert answer.status_code == 400
    assert (answer.get_json()["field"], answer.get_json()["code"]) == (field, code)


def test_unknown_tickets_actions_and_tokens(app, client, people: People):
    number = open_ticket(app)
    assert post(client, "1234567", "add_note", {"as": DORA, "text": "x"}).status_code == 404
    assert post(client, number, "teleport", {"as": DORA}).status_code == 404
    assert post(client, number, "add_note", {"as": DORA, "text": "x"}, headers={}).status_code == 401


@pytest.mark.usefixtures("clean_status_counters")
def test_the_line_reads_to_the_caller_what_the_console_set(app, client, caller, people: People):
    """Issue 9, point 5: phase, urgency, estimated restore time and the technician's first name, as set."""
    number = open_ticket(app, GIULIA)
    when = rome(days=1, hour=10, minute=30)
    for action, fields in [
        ("change_urgency", {"urgency": "critical", "reason": "Tutto l'ufficio è fermo"}),
        ("move_phase", {"phase": "triage"}),
        ("move_phase", {"phase": "diagnostics"}),
        ("set_estimate", {"when": when.astimezone(UTC).isoformat().replace("+00:00", "Z")}),
        ("assign", {"technician_id": people.luca, "skill": "network"}),
    ]:
        assert post(client, number, action, {"as": DORA, **fields}).status_code == 200

    call = caller(GIULIA)
    call.dial_in()
    call.stay_silent()  # Italian
    summary = call.press("2")  # the status of my requests
    assert "in diagnosi" in summary.said()
    status = call.press("2").said()  # the newest one, in full
    assert number in "".join(ch for ch in status if ch.isdigit())
    assert "Stato: in diagnosi." in status
    assert "Urgenza: critica." in status
    assert "Ripristino previsto: domani alle 10:30." in status
    assert "Tecnico assegnato: Luca." in status and "Ferrari" not in status

    # The API's status endpoint reads the same.
    heard = client.get(f"/api/tickets/{number}/status?caller={GIULIA}", headers=AUTH).get_json()
    assert (heard["phase"], heard["urgency"], heard["technician"]) == ("diagnostics", "critical", "Luca")
    assert heard["estimated_restore_at"] == when.astimezone(UTC).isoformat()


def test_the_estimate_set_through_the_api_is_emailed(app, client, people: People, jobs, smtp_sink):
    number = open_ticket(app)
    jobs.run_all()
    before = len(smtp_sink.messages)
    answer = post(client, number, "set_estimate", {"as": DORA, "when": (rome(days=1) + timedelta(hours=1)).isoformat()})
    assert answer.status_code == 200
    jobs.run_all()
    [(recipients, message)] = smtp_sink.messages[before:]
    assert sorted(recipients) == [GIULIA_EMAIL, MARCO_EMAIL] and number in message["Subject"]
