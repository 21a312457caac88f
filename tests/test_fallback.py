"""When things break the caller still hears an apology and leaves a message, and that message becomes a ticket."""

from __future__ import annotations

import dataclasses
import json
import os
import uuid

import pytest
from sqlalchemy import func, select

from callflows.support_line import FLOW
from ivr import create_app
from ivr.voice import spool
from storage.models import Call, PendingWork, Ticket
from tests.conftest import ACCOUNT_SID, BASE_URL, GIULIA, Caller, Twiml, call_params, sign

pytestmark = pytest.mark.usefixtures("directory")

BROKEN_DATABASE = "postgresql+psycopg://nobody@127.0.0.1:1/none"
NO_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def broken_app(settings):  # type: ignore[no-untyped-def]
    """The same line with its database unreachable and no Redis; it spools to the same directory."""
    app = create_app(dataclasses.replace(settings, database_url=BROKEN_DATABASE, redis_url=NO_REDIS))
    app.config["TESTING"] = True
    yield app
    app.config["ENGINE"].dispose()


@pytest.fixture
def broken_client(broken_app):  # type: ignore[no-untyped-def]
    return broken_app.test_client()


def tickets(app) -> list[Ticket]:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        found = list(session.scalars(select(Ticket).order_by(Ticket.id)))
        for ticket in found:
            _ = ticket.events, ticket.customer
        return found


def spooled(settings) -> list:  # type: ignore[no-untyped-def]
    return sorted(settings.spool_dir.glob("*.json")) if settings.spool_dir.exists() else []


def ingest(app) -> int:  # type: ignore[no-untyped-def]
    return spool.ingest(app.config["SETTINGS"].spool_dir, app.config["SESSIONMAKER"])


def recording_sid() -> str:
    return "RE" + uuid.uuid4().hex


def fallback_message(call_sid: str, sid: str, from_: str = GIULIA) -> dict[str, str]:
    """What Twilio posts with the message the fallback answer took."""
    recording = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"
    return call_params(call_sid, from_, RecordingSid=sid, RecordingUrl=recording, RecordingDuration="9", Digits="#")


def post_signed(client, path: str, params: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(path, data=params, headers={"X-Twilio-Signature": sign(BASE_URL + path, params)})


def assert_apology(twiml: Twiml) -> None:
    said = twiml.said()
    assert "Ci scusi, si è verificato un problema tecnico" in said
    assert "We are sorry, we have a technical problem" in said
    assert [say.get("language") for say in twiml.root.iter("Say")] == ["it-IT", "en-GB"]
    record = twiml.find("Record")
    assert record is not None
    assert record.get("action") == f"{BASE_URL}/twilio/fallback/message"
    assert record.get("recordingStatusCallback") == f"{BASE_URL}/twilio/recording"
    assert twiml.redirect_url() == f"{BASE_URL}/twilio/fallback/message"  # silence still ends in the message step


@pytest.mark.parametrize("which", ["working", "broken"])
def test_the_fallback_url_apologises_in_both_languages_and_takes_a_message(client, broken_client, which):
    params = {"CallSid": "CA" + uuid.uuid4().hex, "From": GIULIA, "To": "+390392847438", "ErrorCode": "11200"}
    response = post_signed(client if which == "working" else broken_client, "/twilio/fallback", params)
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert_apology(Twiml(response.get_data(as_text=True)))


def test_a_message_left_while_the_database_is_down_is_spooled_then_becomes_a_voicemail_ticket(
    app, broken_client, settings
):
    call_sid, sid = "CA" + uuid.uuid4().hex, recording_sid()
    response = post_signed(broken_client, "/twilio/fallback/message", fallback_message(call_sid, sid))
    assert response.status_code == 200
    thanks = Twiml(response.get_data(as_text=True))
    assert "il messaggio è stato registrato" in thanks.said()
    assert "your message has been recorded" in thanks.said()
    assert thanks.verbs()[-1] == "Hangup"

    [kept] = spooled(settings)
    assert json.loads(kept.read_text(encoding="utf-8"))["form"]["RecordingSid"] == sid
    assert tickets(app) == []

    assert ingest(app) == 1
    assert spooled(settings) == []
    [ticket] = tickets(app)
    assert ticket.voicemail
    assert ticket.recording_sid == sid and ticket.recording_url.endswith(f"/Recordings/{sid}")
    assert ticket.call_sid == call_sid and ticket.caller == GIULIA
    assert ticket.customer.code == "1001"
    assert any(event.kind == "fallback" for event in ticket.events)
    with app.config["SESSIONMAKER"]() as session:
        assert (
            session.scalar(select(func.count()).select_from(PendingWork).where(PendingWork.ticket_id == ticket.id)) == 1
        )


def test_a_spooled_message_waits_while_the_database_is_still_down(app, broken_app, broken_client, settings):
    call_sid, sid = "CA" + uuid.uuid4().hex, recording_sid()
    post_signed(broken_client, "/twilio/fallback/message", fallback_message(call_sid, sid))
    assert ingest(broken_app) == 0
    assert len(spooled(settings)) == 1  # kept for the next try
    assert ingest(app) == 1
    assert [t.recording_sid for t in tickets(app)] == [sid]


def test_ingesting_twice_or_twilio_posting_the_message_twice_gives_one_ticket(app, broken_client, settings):
    call_sid, sid = "CA" + uuid.uuid4().hex, recording_sid()
    form = fallback_message(call_sid, sid)
    for _ in range(2):
        assert post_signed(broken_client, "/twilio/fallback/message", form).status_code == 200
    assert len(spooled(settings)) == 2

    assert ingest(app) == 2
    assert ingest(app) == 0
    assert spooled(settings) == []
    assert post_signed(broken_client, "/twilio/fallback/message", form).status_code == 200
    assert ingest(app) == 1
    [ticket] = tickets(app)
    assert ticket.recording_sid == sid
    assert sum(event.kind == "fallback" for event in ticket.events) == 1


def test_a_message_posted_while_the_database_works_is_also_spooled_and_ingested(app, client, settings):
    call_sid, sid = "CA" + uuid.uuid4().hex, recording_sid()
    assert post_signed(client, "/twilio/fallback/message", fallback_message(call_sid, sid)).status_code == 200
    assert len(spooled(settings)) == 1
    assert ingest(app) == 1
    assert [t.recording_sid for t in tickets(app)] == [sid]


def test_a_menu_webhook_with_the_database_down_answers_the_apology_not_a_500(broken_client):
    call = Caller(broken_client, GIULIA)
    welcome = call.dial_in()  # asserts 200 and text/xml
    assert_apology(welcome)

    step_params = {**call.params, "Digits": "1"}
    response = post_signed(broken_client, "/twilio/step/main_menu", step_params)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert_apology(Twiml(response.get_data(as_text=True)))


def test_a_menu_that_fails_unexpectedly_answers_the_apology_and_keeps_nothing_half_done(app, caller, monkeypatch):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak()

    opened = FLOW.side_effects["open_ticket"]

    def open_then_fail(turn, arg):  # type: ignore[no-untyped-def]
        opened(turn, arg)
        turn.session.flush()  # the ticket row is written...
        raise RuntimeError("...then a bug strikes")

    monkeypatch.setitem(FLOW.side_effects, "open_ticket", open_then_fail)
    answer = call.press("1")  # the confirmation; asserts 200
    assert_apology(answer)
    assert tickets(app) == []  # rolled back: no ticket whose number the caller never heard
    with app.config["SESSIONMAKER"]() as session:
        assert session.scalar(select(func.count()).select_from(PendingWork)) == 0


def test_the_message_after_an_apology_mid_call_opens_the_calls_ticket(app, client, caller, settings):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent()
    sid = recording_sid()
    response = post_signed(client, "/twilio/fallback/message", fallback_message(call.call_sid, sid))
    assert response.status_code == 200
    assert ingest(app) == 1
    [ticket] = tickets(app)
    assert ticket.voicemail and ticket.recording_sid == sid and ticket.call_sid == call.call_sid
    assert ticket.customer.code == "1001"


@pytest.mark.parametrize("path", ["/twilio/status", "/twilio/recording"])
def test_a_callback_that_fails_answers_204_and_is_spooled(broken_client, settings, path):
    call = Caller(broken_client, GIULIA)
    sid = recording_sid()
    if path == "/twilio/status":
        response = call.hang_up()
        kind = "call_status"
    else:
        response = call.recording_ready(sid=sid)
        kind = "recording_status"
    assert response.status_code == 204
    [kept] = spooled(settings)
    entry = json.loads(kept.read_text(encoding="utf-8"))
    assert entry["kind"] == kind and entry["form"]["CallSid"] == call.call_sid


@pytest.mark.parametrize("order", ["recording first", "status first"])
def test_callbacks_spooled_while_the_database_was_down_end_as_one_voicemail_ticket(
    app, client, broken_client, caller, settings, order
):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1")  # asked to describe the problem

    # The database goes down while the caller is recording; the caller hangs up mid-message.
    down = Caller(broken_client, GIULIA, call_sid=call.call_sid)
    down.last = call.last
    assert_apology(down.speak(hang_up=True))  # the Record action fails too: apologised, not kept
    sid = down.recording_sids[-1]
    callbacks = [lambda: down.recording_ready(sid=sid), lambda: down.hang_up()]
    if order == "status first":
        callbacks.reverse()
    for index, callback in enumerate(callbacks):
        assert callback().status_code == 204
        newest = max(spooled(settings), key=lambda p: p.stat().st_mtime_ns)
        os.utime(newest, (1_700_000_000 + index, 1_700_000_000 + index))  # ingested in the order received
    assert len(spooled(settings)) == 2
    assert tickets(app) == []

    assert ingest(app) == 2
    assert spooled(settings) == []
    [ticket] = tickets(app)
    assert ticket.voicemail and ticket.recording_sid == sid
    assert ticket.urgency == "critical"  # everything stopped, premium SLA
    with app.config["SESSIONMAKER"]() as session:
        stored = session.scalars(select(Call).where(Call.call_sid == call.call_sid)).one()
        assert stored.call_status == "completed" and stored.ticket_id == ticket.id

    # Twilio repeating the callbacks once the database is back changes nothing.
    assert call.recording_ready(sid=sid).status_code == 204
    assert call.hang_up().status_code == 204
    assert ingest(app) == 0
    assert len(tickets(app)) == 1
