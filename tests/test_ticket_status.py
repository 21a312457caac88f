"""Callers check a ticket's status by keypad, and only their own (issue 4)."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis import Redis
from sqlalchemy import event, func, select

from ivr.status_guard import RedisStatusGuard
from storage.models import Call, Contact, PendingWork, Ticket, User, VoiceMessage, utcnow
from storage.pins import set_customer_pin
from storage.ticket_numbers import FIRST_SERIAL, check_digit, ticket_number
from storage.tickets import open_ticket_for_call
from tests.conftest import ANNA, BASE_URL, GIULIA, STRANGER, Caller, Twiml

pytestmark = pytest.mark.usefixtures("directory", "clean_status_counters")

MARCO = "+393331234567"  # Giulia's colleague at Officine Brambilla


def ticket_for(app, email: str, **changes) -> str:
    """A ticket opened by the contact with this email; returns its number."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        contact = session.scalars(select(Contact).where(Contact.email == email)).one()
        call = Call(call_sid="CA" + uuid.uuid4().hex, caller=contact.phone, language="it", attempts=0)
        call.contact, call.customer = contact, contact.customer
        session.add(call)
        session.flush()
        ticket = open_ticket_for_call(session, call, "high", voicemail=False, opened_by="a test")
        for name, value in changes.items():
            setattr(ticket, name, value)
        return ticket.number


def assign(app, number: str, technician_name: str, email: str) -> None:
    with app.config["SESSIONMAKER"]() as session, session.begin():
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        ticket.technician = User(name=technician_name, email=email)


def digits_in(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def to_status(call: Caller) -> Twiml:
    call.dial_in()
    call.stay_silent()
    if call.params["From"] not in (GIULIA, ANNA, MARCO):
        call.stay_silent()  # no customer code
    return call.press("2")


def mistype(number: str) -> str:
    """The same number with its check digit wrong."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def test_a_caller_with_open_tickets_hears_the_newest_first_and_can_hear_the_others(app, caller):
    older = ticket_for(app, "giulia.rossi@brambilla.example.it", status="diagnostics")
    newer = ticket_for(app, "giulia.rossi@brambilla.example.it", status="triage")
    ticket_for(app, "giulia.rossi@brambilla.example.it", status="closed")  # not open: not counted
    call = caller(GIULIA)
    summary = to_status(call)
    assert "Lei ha 2 richieste aperte" in summary.said()
    assert newer in digits_in(summary.said()) and older not in digits_in(summary.said())
    assert "in valutazione" in summary.said()  # the newest one's phase
    other = call.press("1")
    assert older in digits_in(other.said()) and "in diagnosi" in other.said()
    wrapped = call.press("1")
    assert "ricomincio dalla più recente" in wrapped.said() and newer in digits_in(wrapped.said())
    details = call.press("2")
    assert "Stato: in valutazione" in details.said() and "Per aggiungere un messaggio vocale" in details.said()


def test_the_status_reads_phase_urgency_update_estimate_and_technicians_first_name(app, caller):
    number = ticket_for(
        app,
        "giulia.rossi@brambilla.example.it",
        status="intervention",
        urgency="critical",
        estimated_restore_at=utcnow() + timedelta(days=1),
    )
    assign(app, number, "Luca Ferrari", "luca.ferrari@helpdesk.example.it")
    call = caller(GIULIA)
    to_status(call)
    status = call.press("2")
    said = status.said()
    assert number in digits_in(said)
    assert "Stato: intervento in corso" in said and "Urgenza: critica" in said
    assert "Ultimo aggiornamento: oggi alle" in said
    assert "Ripristino previsto: domani alle" in said
    assert "Tecnico assegnato: Luca." in said and "Ferrari" not in said
    again = call.press("9")
    assert again.said() == said
    menu = call.press("*")
    assert "Per una nuova richiesta" in menu.said()


def test_in_english_the_status_is_read_in_english(app, caller):
    number = ticket_for(app, "anna@studioverdi.example.it", status="diagnostics")
    call = caller(ANNA)
    call.dial_in()
    call.press("9")
    call.press("2")
    status = call.press("2")
    assert number in digits_in(status.said())
    assert "Status: in diagnostics" in status.said() and "No technician is assigned yet" in status.said()


def test_a_colleague_of_the_same_customer_hears_the_ticket_by_typing_its_number(app, caller):
    number = ticket_for(app, "giulia.rossi@brambilla.example.it", status="diagnostics")
    call = caller(MARCO)  # no open tickets of his own
    asked = to_status(call)
    assert "Digiti il numero della richiesta" in asked.said()
    status = call.press(number + "#")
    assert "Stato: in diagnosi" in status.said()


def test_another_customers_ticket_gets_the_same_words_as_an_unknown_one(app, caller):
    verdi = ticket_for(app, "anna@studioverdi.example.it", status="diagnostics")
    unknown = "1234567" + check_digit("1234567")
    answers = []
    for number in (verdi, unknown):
        call = caller(GIULIA)
        to_status(call)
        pin_prompt = call.press(number + "#")
        refused = call.press("0000#")
        answers.append((pin_prompt.said(), refused.said()))
        assert "Studio Verdi" not in refused.said() and "diagnosi" not in refused.said()
    assert answers[0] == answers[1]
    assert "digiti il PIN telefonico" in answers[0][0]
    assert answers[0][1].startswith("Non possiamo dare informazioni su questa richiesta")


def test_a_valid_pin_from_an_unknown_number_reads_the_status(app, caller):
    number = ticket_for(app, "anna@studioverdi.example.it", status="diagnostics")
    with app.config["SESSIONMAKER"]() as session, session.begin():
        set_customer_pin(session, "2002", "4711")
    call = caller(STRANGER)
    to_status(call)
    call.press(number + "#")
    status = call.press("4711#")
    assert "Stato: in diagnosi" in status.said()


def test_a_mistyped_number_is_refused_without_looking_it_up(app, caller):
    number = ticket_for(app, "giulia.rossi@brambilla.example.it")
    call = caller(MARCO)
    to_status(call)
    lookups = []
    engine = app.config["ENGINE"]

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if "FROM tickets" in statement:
            lookups.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        refused = call.press(mistype(number) + "#")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert refused.said().startswith("Il numero non è valido, lo digiti di nuovo")
    assert lookups == []


@pytest.mark.parametrize(
    ("typed", "explained"),
    [
        ("12*45#", "solo di cifre"),
        ("*", "solo di cifre"),
        ("1234567890123456#", "troppo lungo"),
        ("#", "Non ho ricevuto nessun numero"),
        ("silence", "Non ho ricevuto nessun numero"),
    ],
)
def test_each_bad_entry_is_explained_then_after_three_tries_back_to_the_main_menu(app, caller, typed, explained):
    call = caller(MARCO)
    to_status(call)
    for _ in range(2):
        answer = call.stay_silent() if typed == "silence" else call.press(typed)
        assert answer.said().startswith(explained) or explained in answer.said().split(".")[0]
        assert "Digiti il numero della richiesta" in answer.said()
    final = call.stay_silent() if typed == "silence" else call.press(typed)
    assert "Per una nuova richiesta" in final.said()


def test_five_failures_lock_the_calling_number_for_an_hour_and_say_so(app, caller):
    verdi = ticket_for(app, "anna@studioverdi.example.it")
    refusals = 0
    while refusals < 5:
        call = caller(STRANGER)
        to_status(call)
        call.press(verdi + "#")
        for _ in range(3):
            answer = call.press("9999#")
            refusals += 1
            if refusals == 5:
                break
    assert "per un'ora" in answer.said()
    call = caller(STRANGER)
    locked = to_status(call)
    assert "per un'ora" in locked.said() and "Per una nuova richiesta" in locked.said()
    # Another number may still ask about its own tickets.
    assert "Digiti il numero della richiesta" in to_status(caller(MARCO)).said()


def test_five_failures_on_one_ticket_lock_that_ticket_whoever_calls(app, caller):
    verdi = ticket_for(app, "anna@studioverdi.example.it")
    for n in range(5):
        call = caller(f"+39347111220{n}")
        to_status(call)
        call.press(verdi + "#")
        call.press("9999#")
    call = caller("+393471112299")
    to_status(call)
    assert "per un'ora" in call.press(verdi + "#").said()


def test_the_lock_expires(app, caller):
    app.config["STATUS_GUARD"].window = 1
    verdi = ticket_for(app, "anna@studioverdi.example.it")
    for _ in range(2):
        call = caller(STRANGER)
        to_status(call)
        call.press(verdi + "#")
        for _ in range(3):
            call.press("9999#")
    assert "per un'ora" in to_status(caller(STRANGER)).said()
    time.sleep(1.5)
    assert "Digiti il numero della richiesta" in to_status(caller(STRANGER)).said()


def test_with_redis_unreachable_no_guessable_question_is_answered(app, caller):
    app.config["STATUS_GUARD"] = RedisStatusGuard(Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2), "x")
    call = caller(STRANGER)
    answer = to_status(call)
    assert "non è disponibile in questo momento" in answer.said()
    assert "Per una nuova richiesta" in answer.said()


def test_a_spoken_message_is_added_to_the_ticket_once(app, caller):
    number = ticket_for(app, "giulia.rossi@brambilla.example.it")
    call = caller(GIULIA)
    to_status(call)
    prompt = call.press("2")
    record_prompt = call.press("1")
    record = record_prompt.find("Record")
    assert record.get("recordingStatusCallback") == f"{BASE_URL}/twilio/recording?purpose=message"
    added = call.speak()
    assert "il messaggio è stato aggiunto" in added.said()
    for _ in range(2):
        response = call.post(
            record.get("recordingStatusCallback"),
            {
                "RecordingSid": call.recording_sids[-1],
                "RecordingUrl": "https://api.twilio.com/x/Recordings/" + call.recording_sids[-1],
                "RecordingStatus": "completed",
            },
        )
        assert response.status_code == 204
    call.hang_up()
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        assert [e.kind for e in ticket.events].count("voice_message") == 1
        assert session.scalar(select(func.count()).select_from(VoiceMessage)) == 1
        assert (
            session.scalar(select(func.count()).select_from(PendingWork).where(PendingWork.kind == "voice_message"))
            == 1
        )
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1  # no voicemail ticket for this call
    assert "Stato" in prompt.said()


def test_set_pin_stores_only_a_hash(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["set-pin", "1001"], input="4321\n4321\n")
    assert result.exit_code == 0, result.output
    with app.config["SESSIONMAKER"]() as session:
        stored = session.scalars(select(Contact)).first().customer.pin_hash
    assert stored and "4321" not in stored
    assert runner.invoke(args=["set-pin", "1001"], input="12\n12\n").exit_code == 1
    assert runner.invoke(args=["set-pin", "9999"], input="4321\n4321\n").exit_code == 1
    assert runner.invoke(args=["set-pin", "1001", "--clear"]).exit_code == 0


def test_the_api_tells_what_the_line_would_read_under_the_same_rule(app, client):
    number = ticket_for(app, "giulia.rossi@brambilla.example.it", status="diagnostics")
    with app.config["SESSIONMAKER"]() as session, session.begin():
        set_customer_pin(session, "1001", "2468")
    auth = {"Authorization": "Bearer test-api-token"}
    own = client.get(f"/api/tickets/{number}/status?caller={MARCO}", headers=auth)
    assert own.status_code == 200 and own.json["phase"] == "diagnostics"
    assert "Stato: in diagnosi" in own.json["said"]
    other = client.get(f"/api/tickets/{number}/status?caller={ANNA}", headers=auth)
    unknown = client.get(f"/api/tickets/12345670/status?caller={ANNA}", headers=auth)
    assert other.status_code == unknown.status_code == 404 and other.json == unknown.json
    with_pin = client.get(
        f"/api/tickets/{number}/status?caller={ANNA}&lang=en", headers={**auth, "X-Ticket-PIN": "2468"}
    )
    assert with_pin.status_code == 200 and "Status: in diagnostics" in with_pin.json["said"]
    assert client.get(f"/api/tickets/{number}/status?caller={MARCO}").status_code == 401


STATUS_STEPS = ["status", "my_tickets", "ticket_number", "status_pin", "ticket_status", "add_message"]
FIRST_TICKET = ticket_number(FIRST_SERIAL)  # the property test's database holds one ticket: Studio Verdi's


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    step=st.sampled_from(STATUS_STEPS),
    digits=st.one_of(
        st.text(max_size=30),
        st.from_regex(r"[0-9*#]{0,20}", fullmatch=True),
        st.sampled_from([FIRST_TICKET, FIRST_TICKET + "#", "2", "1"]),
    ),
    from_=st.one_of(st.sampled_from([GIULIA, ANNA, STRANGER, "anonymous", "", "+266696687"]), st.text(max_size=20)),
    event=st.sampled_from([None, "silence"]),
)
def test_any_input_to_any_status_step_is_answered_with_valid_twiml_and_never_another_customers_data(
    app, client, step, digits, from_, event
):
    if not hasattr(app, "_verdi_number"):
        app._verdi_number = ticket_for(app, "anna@studioverdi.example.it", status="diagnostics")
    verdi = app._verdi_number
    assert verdi == FIRST_TICKET
    call = Caller(client, from_)
    call.post(f"{BASE_URL}/twilio/voice")
    if step in ("status_pin", "ticket_status", "add_message"):  # first type the other customer's number
        call.post(f"{BASE_URL}/twilio/step/ticket_number", {"Digits": verdi})
    url = f"{BASE_URL}/twilio/step/{step}" + ("?event=silence" if event else "")
    response = call.post(url, {"Digits": digits})
    assert response.status_code == 200
    root = ElementTree.fromstring(response.data)
    assert root.tag == "Response"
    said = " ".join(e.text or "" for e in root.iter("Say"))
    if from_ != ANNA:
        assert verdi not in re.sub(r"\D", "", said)
        assert "Studio Verdi" not in said


def test_a_technician_who_does_not_answer_gets_a_message_on_the_same_ticket(app, caller):
    number = ticket_for(app, "giulia.rossi@brambilla.example.it")
    call = caller(GIULIA)
    to_status(call)
    call.press("2")
    dial = call.press("2").find("Dial")
    assert dial is not None and dial.find("Number").text == "+390392847400"
    message = call.dial_ends("no-answer")
    assert "nessun tecnico è disponibile" in message.said()
    assert message.find("Record").get("recordingStatusCallback").endswith("?purpose=message")
    call.speak()
    call.hang_up()
    with app.config["SESSIONMAKER"]() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1  # no new ticket
        [voice_message] = session.scalars(select(VoiceMessage)).all()
        assert voice_message.ticket.number == number
