"""The voice menu as a caller lives it: signed webhooks in, TwiML out, tickets in the database."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callflows.engine import CallFlow, FlowError, Menu, go
from callflows.support_line import FLOW
from helpdesk import thread
from helpdesk.hours import BusinessHours
from storage.models import Call, PendingWork, Ticket
from storage.ticket_numbers import is_valid
from tests.conftest import ANNA, GIULIA, STRANGER

pytestmark = pytest.mark.usefixtures("directory")


def tickets(app) -> list[Ticket]:
    with app.config["SESSIONMAKER"]() as session:
        found = list(session.scalars(select(Ticket).order_by(Ticket.id)))
        for ticket in found:
            _ = ticket.events, ticket.customer
        return found


def stored_call(app, call_sid: str) -> Call:
    with app.config["SESSIONMAKER"]() as session:
        return session.scalars(select(Call).where(Call.call_sid == call_sid)).one()


def spoken_number(twiml) -> str:
    """The digits read back in the Says after 'request number', joined."""
    says = [e.text or "" for e in twiml.root.iter("Say")]
    return "".join(ch for text in says for ch in text if ch.isdigit())


def test_known_caller_opens_a_ticket_and_hears_its_number(app, caller):
    call = caller(GIULIA)
    welcome = call.dial_in()
    assert "messaggi vengono registrati" in welcome.said()  # the privacy notice, in Italian
    assert "For English, press 9" in welcome.said()
    menu = call.stay_silent()
    assert "Officine Brambilla" in menu.said()
    assert menu.gather().get("numDigits") == "1"
    triage = call.press("1")
    assert "Se è tutto fermo, prema 1" in triage.said()
    record_prompt = call.press("1")
    record = record_prompt.find("Record")
    assert record is not None
    assert record.get("maxLength") == "120" and record.get("finishOnKey") == "#"
    assert record.get("recordingStatusCallback") == "https://ivr.example.com/twilio/recording"
    confirm = call.speak()
    assert "Per confermare il messaggio, prema 1" in confirm.said()
    opened = call.press("1")

    [ticket] = tickets(app)
    assert is_valid(ticket.number)
    assert ticket.number in spoken_number(opened)
    assert ticket.urgency == "critical"  # everything stopped, premium SLA
    assert ticket.customer.code == "1001" and ticket.caller == GIULIA
    assert ticket.recording_sid == call.recording_sids[-1]
    assert not ticket.voicemail and not ticket.needs_match

    again = call.press("1")
    assert ticket.number in spoken_number(again)
    goodbye = call.stay_silent()
    assert goodbye.verbs()[-1] == "Hangup"


def test_logs_hold_no_full_phone_number(app, caller, caplog):
    caplog.set_level("DEBUG")
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")
    call.hang_up()
    assert "CA" in caplog.text  # the call is logged...
    assert GIULIA[4:] not in caplog.text  # ...but not who called


def test_ticket_number_is_read_slowly_in_groups(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("2"), call.speak()
    opened = call.press("1")
    gather = opened.gather()
    digit_says = [e.text for e in gather.iter("Say") if e.text and e.text[0].isdigit()]
    assert all(len(text.replace(", ", "").rstrip(".")) <= 3 for text in digit_says)
    assert len(list(gather.iter("Pause"))) == len(digit_says) - 1


def test_key_9_switches_the_rest_of_the_call_to_english(app, caller):
    call = caller(GIULIA)
    call.dial_in()
    menu = call.press("9")
    assert "For a new support request, press 1" in menu.said()
    assert menu.find("Say").get("language") == "en-GB"
    call.press("1"), call.press("3")
    call.speak()
    call.press("1")
    [ticket] = tickets(app)
    assert ticket.language == "en"
    assert ticket.urgency == "normal"  # a request, premium SLA


def test_unknown_caller_can_type_a_customer_code_and_is_linked_provisionally(app, caller):
    call = caller(STRANGER)
    call.dial_in()
    asked = call.stay_silent()
    assert "codice cliente" in asked.said()
    assert asked.gather().get("finishOnKey") == "#"
    wrong = call.press("9999#")
    assert "non corrisponde a nessun cliente" in wrong.said()
    menu = call.press("2002#")
    assert "abbiamo preso nota del codice cliente" in menu.said()
    assert "Studio Verdi" not in menu.said()  # a typed code is a claim: the line does not confirm it
    assert "Per una nuova richiesta" in menu.said()
    call.press("1"), call.press("2"), call.speak()
    opened = call.press("1")
    assert "Un operatore la ricontatterà" in opened.said()  # no confirmation email is promised
    [ticket] = tickets(app)
    assert ticket.customer.code == "2002" and ticket.needs_match and ticket.contact_id is None
    assert ticket.urgency == "normal"  # partly works, base SLA


def test_unknown_caller_without_a_code_goes_on_unregistered(app, caller):
    call = caller(STRANGER)
    call.dial_in(), call.stay_silent()
    menu = call.stay_silent()
    assert "Per una nuova richiesta" in menu.said()
    call.press("1"), call.press("1"), call.speak()
    opened = call.press("1")
    assert "Un operatore la ricontatterà" in opened.said()
    [ticket] = tickets(app)
    assert ticket.customer is None and ticket.needs_match
    assert ticket.caller == STRANGER
    assert any("Unregistered caller" in thread.render(e, "en") for e in ticket.events)


def test_two_wrong_customer_codes_go_on_unregistered(app, caller):
    call = caller(STRANGER)
    call.dial_in(), call.stay_silent()
    call.press("123#")
    menu = call.press("456#")
    assert "un operatore associerà la richiesta" in menu.said()
    assert "Per una nuova richiesta" in menu.said()


@pytest.mark.parametrize("withheld", ["anonymous", "Restricted", "", "+266696687"])
def test_withheld_caller_is_asked_for_a_callback_number(app, caller, withheld):
    call = caller(withheld)
    call.dial_in()
    asked = call.stay_silent()
    assert "numero è nascosto" in asked.said()
    invalid = call.press("12#")
    assert "non è un numero di telefono valido" in invalid.said()
    noted = call.press("3479876543#")
    assert "3, 4, 7, 9, 8, 7, 6, 5, 4, 3" in noted.said()  # read back digit by digit
    assert "codice cliente" in noted.said()
    call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")
    [ticket] = tickets(app)
    assert ticket.caller is None and ticket.callback_number == "+393479876543"
    assert ticket.needs_match


def test_withheld_caller_typing_a_contacts_number_is_not_recognised_by_it(app, caller):
    call = caller("anonymous")
    call.dial_in(), call.stay_silent()
    noted = call.press("0392301122#")  # Giulia's number, typed by whoever is calling
    assert "Officine Brambilla" not in noted.said()
    assert "3, 9, 0, 3, 9, 2, 3, 0, 1, 1, 2, 2" in noted.said()  # noted as where to call back
    assert "codice cliente" in noted.said()  # asked on like any unknown caller


def test_withheld_caller_who_types_nothing_goes_on(app, caller):
    call = caller("anonymous")
    call.dial_in(), call.stay_silent()
    call.stay_silent(), call.stay_silent()
    code = call.stay_silent()
    assert "senza un numero di richiamata" in code.said()
    assert "codice cliente" in code.said()


@pytest.mark.parametrize("step_keys", [[], ["1"]], ids=["main_menu", "triage"])
@pytest.mark.parametrize("bad_input", ["7", "*", "#", "silence"])
def test_wrong_keys_are_asked_again_then_lead_to_a_message(app, caller, step_keys, bad_input):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent()
    for key in step_keys:
        call.press(key)
    first_prompt = call.last.said()
    for _ in range(2):
        answer = call.stay_silent() if bad_input == "silence" else call.press(bad_input)
        expected = (
            "Non ho ricevuto nessuna scelta"
            if bad_input == "silence"
            else "Il tasto premuto non è tra le scelte possibili"
        )
        assert answer.said().startswith(expected)
        assert first_prompt.split(".")[-2] in answer.said()  # the same question again
    final = call.stay_silent() if bad_input == "silence" else call.press(bad_input)
    assert "Le passo la segreteria" in final.said()
    assert final.find("Record") is not None
    call.speak()
    [ticket] = tickets(app)
    assert ticket.voicemail


@pytest.mark.parametrize("bad_input", ["5", "silence"])
def test_confirm_recording_asks_again_then_keeps_the_message(app, caller, bad_input):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("2"), call.speak()
    for _ in range(2):
        answer = call.stay_silent() if bad_input == "silence" else call.press(bad_input)
        assert "Per confermare il messaggio" in answer.said()
    opened = call.stay_silent() if bad_input == "silence" else call.press(bad_input)
    [ticket] = tickets(app)
    assert ticket.number in spoken_number(opened)


def test_pressing_2_records_the_problem_again(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("2"), call.speak()
    again = call.press("2")
    assert again.find("Record") is not None
    call.speak()
    call.press("1")
    [ticket] = tickets(app)
    assert ticket.recording_sid == call.recording_sids[-1] != call.recording_sids[0]


def test_silence_instead_of_a_description_is_asked_once_more_then_opens_without_audio(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("2")
    again = call.stay_silent()
    assert "Non ho sentito nessun messaggio" in again.said()
    assert again.find("Record") is not None
    opened = call.stay_silent()
    assert "senza una descrizione registrata" in opened.said()
    [ticket] = tickets(app)
    assert ticket.recording_sid is None
    assert any(e.kind == "no_audio" for e in ticket.events)


def test_wrong_key_after_the_ticket_number_is_explained(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")
    answer = call.press("5")
    assert answer.said().startswith("Il tasto premuto non è tra le scelte possibili")


def test_hanging_up_during_the_recording_still_opens_a_voicemail_ticket(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1")
    call.speak(hang_up=True)
    assert call.hang_up().status_code == 204
    assert call.recording_ready().status_code == 204
    [ticket] = tickets(app)
    assert ticket.voicemail and ticket.recording_sid == call.recording_sids[-1]
    assert ticket.urgency == "critical"


def test_hanging_up_at_the_confirmation_opens_the_ticket_from_the_callbacks(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("2"), call.speak()
    # The recording is ready while the caller still hears the confirmation menu: no ticket yet.
    call.recording_ready()
    assert tickets(app) == []
    call.hang_up()
    [ticket] = tickets(app)
    assert ticket.voicemail and ticket.recording_sid == call.recording_sids[-1]


def test_callbacks_in_the_other_order_give_the_same_ticket(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("2")
    call.hang_up()  # Twilio never sent the Record action: the caller hung up mid-recording
    call.recording_sids.append("RE" + "a" * 32)
    call.recording_ready()
    [ticket] = tickets(app)
    assert ticket.voicemail and ticket.recording_sid == "RE" + "a" * 32


def test_twilio_repeating_every_callback_opens_one_ticket(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak()
    confirm_url = call.last.gather().get("action")
    call.press("1")
    call.post(confirm_url, {"Digits": "1"})  # the same confirmation again
    for _ in range(2):
        call.recording_ready(), call.hang_up()
    call.post(confirm_url, {"Digits": "1"})
    assert len(tickets(app)) == 1
    with app.config["SESSIONMAKER"]() as session:
        assert session.scalar(select(func.count()).select_from(PendingWork)) == 1
    assert stored_call(app, call.call_sid).call_status == "completed"


def test_a_call_abandoned_in_the_menu_is_counted_but_opens_no_ticket(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent()
    call.post("https://ivr.example.com/twilio/status", {"CallStatus": "in-progress"})
    call.hang_up(duration=12)
    call.post("https://ivr.example.com/twilio/status", {"CallStatus": "ringing"})  # late, out of order
    stored = stored_call(app, call.call_sid)
    assert stored.call_status == "completed" and stored.duration == 12 and stored.ticket_id is None
    assert tickets(app) == []


def test_operator_in_business_hours_dials_the_on_call_number(app, caller):
    call = caller(ANNA)
    call.dial_in(), call.stay_silent()
    dialing = call.press("0")
    dial = dialing.find("Dial")
    assert dial is not None and dial.find("Number").text == "+390392847400"
    assert dial.get("timeout") == "20"
    message = call.dial_ends("no-answer")
    assert "nessun tecnico è disponibile" in message.said()
    assert message.find("Record") is not None
    call.speak()
    [ticket] = tickets(app)
    assert ticket.voicemail and ticket.customer.code == "2002"


def test_operator_answered_ends_the_call(app, caller):
    call = caller(ANNA)
    call.dial_in(), call.stay_silent()
    call.press("0")
    done = call.dial_ends("completed")
    assert done.verbs()[-1] == "Hangup"


def test_operator_outside_business_hours_takes_a_message(app, caller):
    app.config["BUSINESS_HOURS"] = BusinessHours.parse("sat 00:00-00:01")  # closed all week, in effect
    call = caller(ANNA)
    call.dial_in(), call.stay_silent()
    closed = call.press("0")
    assert "assistenza telefonica è chiusa" in closed.said()
    assert closed.find("Dial") is None and closed.find("Record") is not None


def test_the_flow_has_no_loose_ends():
    assert FLOW.problems() == []
    steps = {step for step, _, _ in FLOW.table()}
    assert {"welcome", "main_menu", "triage", "describe_problem", "ticket_opened", "leave_message"} <= steps


def test_a_broken_flow_is_refused_when_it_loads():
    with pytest.raises(FlowError) as refused:
        CallFlow(
            [
                Menu(
                    "start", prompt=("main_menu", "no_such_prompt"), options={"1": go("nowhere")}, exhausted=go("start")
                ),
                Menu("island", prompt=("main_menu",), options={}, exhausted=go("start")),
            ],
            side_effects={},
            speakers={},
        )
    message = str(refused.value)
    assert "unknown step 'nowhere'" in message
    assert "'no_such_prompt' missing in it" in message
    assert "island is unreachable" in message


def test_the_readme_shows_the_flow_as_it_is():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for step, event, target in FLOW.table():
        assert f"| `{step}` | {event} | {target} |" in readme


def test_callbacks_racing_the_callers_confirmation_still_open_one_ticket(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak()
    confirm_url = call.last.gather().get("action")
    racers = [lambda: call.post(confirm_url, {"Digits": "1"}) for _ in range(4)]
    racers += [call.recording_ready, call.hang_up] * 2
    barrier = threading.Barrier(len(racers))

    def race(post):
        barrier.wait()
        return post()

    with ThreadPoolExecutor(len(racers)) as pool:
        responses = list(pool.map(race, racers))
    assert all(r.status_code in (200, 204) for r in responses)
    assert not any(b"sorry" in r.data.lower() or b"ci scusi" in r.data.lower() for r in responses)
    assert len(tickets(app)) == 1


def test_malformed_durations_from_twilio_do_not_break_the_call(app, caller):
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1")
    record = call.last.find("Record")
    answer = call.answer(record.get("action"), {"RecordingSid": "RE" + "b" * 32, "RecordingDuration": "n/a"})
    assert "Non ho sentito nessun messaggio" in answer.said()
    assert (
        call.post("https://ivr.example.com/twilio/status", {"CallStatus": "completed", "CallDuration": "x"}).status_code
        == 204
    )
