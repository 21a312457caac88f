"""The call simulator against the real app in a real HTTP server: every flow of the line, in both
languages, the way Twilio would drive it; and the TwiML check that doubles as a conformance test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask, Response
from sqlalchemy import select
from werkzeug.serving import make_server

from ivr import create_app
from ivr.jobs.recordings import download_recording
from ivr.settings import Settings
from ivr.simulator.call import CallResult, Line, SimulatedCall, gathered_digits
from ivr.simulator.caller import Caller, Question, ScriptedCaller, ScriptError, parse_answer
from ivr.simulator.commands import make_caller
from ivr.simulator.media import CallerVoice, RecordingServer, wav_seconds
from ivr.simulator.twiml_check import check_twiml
from storage.contacts import import_contacts
from storage.models import Call, Ticket
from storage.pins import set_customer_pin
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, BASE_URL, DIRECTORY_CSV, GIULIA, STRANGER, sign

LINE_NUMBER = "+390392847438"
BOTH_LANGUAGES = pytest.mark.parametrize("language", ["it", "en"])


class LateApp:
    """A WSGI app given to the server before the app exists (the app needs the server's URL)."""

    app: Flask | None = None

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        assert self.app is not None
        return self.app(environ, start_response)


def serve(app_or_late) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    server = make_server("127.0.0.1", 0, app_or_late, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


@dataclass
class RunningLine:
    """The app answering real HTTP on loopback, and a loopback server for the caller's recordings."""

    app: Flask
    url: str
    recordings: RecordingServer

    def call(
        self,
        keys: str = "",
        *,
        language: str | None = None,
        from_: str = GIULIA,
        answer: bool = False,
        line: Line | None = None,
        caller: Caller | None = None,
    ) -> CallResult:
        """A whole call with `keys` answered in order (after choosing `language` at the welcome)."""
        line = line or Line(self.url, ACCOUNT_SID, AUTH_TOKEN, public_base_url=self.url)
        caller = caller or make_caller(keys, None, language)
        voice = CallerVoice(language or "it")
        simulated = SimulatedCall(
            line, caller, from_=from_, to=LINE_NUMBER, voice=voice, recordings=self.recordings, answer_dial=answer
        )
        return simulated.run()

    def tickets(self) -> list[Ticket]:
        with self.app.config["SESSIONMAKER"]() as session:
            found = list(session.scalars(select(Ticket).order_by(Ticket.id)))
            for ticket in found:
                _ = ticket.customer
            return found

    def stored_call(self, call_sid: str) -> Call:
        with self.app.config["SESSIONMAKER"]() as session:
            return session.scalars(select(Call).where(Call.call_sid == call_sid)).one()


def start_line(settings: Settings, public_base_url: str | None = None) -> tuple[RunningLine, object]:
    late = LateApp()
    url, server = serve(late)
    late.app = app = create_app(replace(settings, public_base_url=public_base_url or url))
    with app.config["SESSIONMAKER"]() as session, session.begin():
        import_contacts(session, DIRECTORY_CSV)
    return RunningLine(app, url, RecordingServer(ACCOUNT_SID, AUTH_TOKEN)), server


@pytest.fixture
def line(settings: Settings) -> Iterator[RunningLine]:
    running, server = start_line(settings)
    yield running
    server.shutdown()  # type: ignore[attr-defined]
    running.recordings.close()
    running.app.config["ENGINE"].dispose()


def lines_after(result: CallResult, marker: str) -> list[str]:
    """The transcript from the first line containing `marker` on (that line excluded)."""
    index = next(i for i, text in enumerate(result.transcript) if marker in text)
    return result.transcript[index + 1 :]


def digits_read_out(transcript: list[str]) -> str:
    """The digits the line reads out one by one ("1, 0, 0."), joined."""
    said = [text.split(": ", 1)[1] for text in transcript if text.startswith("LINE (")]
    return "".join(ch for text in said if text[:1].isdigit() for ch in text if ch.isdigit())


# -- every flow of the line, in both languages -------------------------------------------------------


@BOTH_LANGUAGES
def test_a_known_caller_opens_a_ticket_and_hears_its_number(line, language):
    result = line.call("1,1,rec,1,-", language=language)

    assert result.ok, result.problems
    assert result.transcript[-1] == "HANGUP"
    assert any(text.startswith("CALLER says: ") and "(recording " in text for text in result.transcript)
    [ticket] = line.tickets()
    assert ticket.language == language and ticket.customer.code == "1001"
    assert not ticket.voicemail and ticket.urgency == "critical"  # everything stopped, premium
    assert ticket.recording_sid == result.recording_sids[0]
    assert ticket.number in digits_read_out(result.transcript)
    call = line.stored_call(result.call_sid)
    assert call.call_status == "completed" and call.duration  # the status callback arrived


def test_the_message_is_served_like_a_twilio_recording_for_the_worker(line, tmp_path):
    result = line.call("1,2,rec,1,-", language="it")

    [ticket] = line.tickets()
    assert ticket.recording_url.startswith(f"http://{line.recordings.host}/2010-04-01/Accounts/{ACCOUNT_SID}/")
    path = download_recording(
        ticket.recording_url,
        ticket.recording_sid,
        tmp_path,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        allowed_hosts=[line.recordings.host],
    )
    assert wav_seconds(path.read_bytes()) > 2
    assert line.recordings.wait_until_fetched(result.recording_sids, timeout=1)


@BOTH_LANGUAGES
def test_the_status_option_reads_out_the_callers_open_request(line, language):
    line.call("1,1,rec,1,-", language=language)
    [ticket] = line.tickets()

    result = line.call("2,hangup", language=language)

    assert result.ok, result.problems
    after_pressing_2 = lines_after(result, "CALLER presses 2")
    assert ticket.number in digits_read_out(after_pressing_2)
    assert after_pressing_2[-1] == "CALLER hangs up"
    assert len(line.tickets()) == 1


@BOTH_LANGUAGES
def test_a_stranger_with_the_customers_pin_hears_the_status_of_a_typed_number(line, language):
    line.call("1,1,rec,1,-", language=language)
    [ticket] = line.tickets()
    with line.app.config["SESSIONMAKER"]() as session, session.begin():
        set_customer_pin(session, "1001", "4711")

    result = line.call(f"-,2,{ticket.number}#,4711#,*,hangup", language=language, from_=STRANGER)

    assert result.ok, result.problems
    after_the_pin = lines_after(result, "CALLER presses 4711#")
    assert ticket.number in digits_read_out(after_the_pin)


@BOTH_LANGUAGES
def test_the_status_option_answers_a_caller_without_requests_and_the_call_goes_on(line, language):
    result = line.call("-,2,hangup", language=language, from_=STRANGER)  # no customer code, then 2

    assert result.ok, result.problems
    after_pressing_2 = lines_after(result, "CALLER presses 2")
    assert after_pressing_2[0].startswith("LINE (")
    assert after_pressing_2[-1] == "CALLER hangs up"
    assert line.tickets() == []


@BOTH_LANGUAGES
def test_an_operator_who_does_not_answer_leaves_the_caller_a_message(line, language):
    result = line.call("0,rec,-", language=language)

    assert result.ok, result.problems
    assert "DIAL +390392847400 (no answer after 20 s)" in result.transcript
    [ticket] = line.tickets()
    assert ticket.voicemail and ticket.language == language
    assert ticket.recording_sid == result.recording_sids[0]
    assert ticket.number in digits_read_out(result.transcript)


def test_an_operator_who_answers_takes_the_call(line):
    result = line.call("0", language="it", answer=True)

    assert result.ok, result.problems
    assert any(text.startswith("DIAL +390392847400 (answered") for text in result.transcript)
    assert result.transcript[-1] == "HANGUP"
    assert line.tickets() == []


@BOTH_LANGUAGES
def test_hanging_up_during_the_message_leaves_a_voicemail_ticket(line, language):
    result = line.call("1,3,hangup", language=language)

    assert result.ok, result.problems
    assert result.transcript[-1] == "CALLER hangs up"
    [ticket] = line.tickets()
    assert ticket.voicemail and ticket.language == language
    assert ticket.recording_sid == result.recording_sids[0]


def test_hanging_up_at_the_menu_opens_no_ticket(line):
    result = line.call("hangup", language="it")

    assert result.ok, result.problems
    assert line.tickets() == []
    assert line.stored_call(result.call_sid).call_status == "completed"


def test_an_unknown_caller_types_the_customer_code(line):
    result = line.call("-,2002#,1,2,rec,1,-", from_=STRANGER)

    assert result.ok, result.problems
    assert "CALLER presses 2002#" in result.transcript
    [ticket] = line.tickets()
    assert ticket.customer.code == "2002" and ticket.caller == STRANGER


def test_a_withheld_caller_leaves_a_number_to_call_back(line):
    result = line.call("3479876543#,-,1,1,rec,1,-", language="en", from_="anonymous")

    assert result.ok, result.problems
    [ticket] = line.tickets()
    assert ticket.caller is None and ticket.callback_number == "+393479876543"
    assert ticket.needs_match and ticket.language == "en"


def test_silence_at_every_question_still_ends_in_a_ticket(line):
    result = line.call("-,-,-", language="it")  # the menu asks three times, then takes a message

    assert result.ok, result.problems
    assert "(beep)" in result.transcript
    assert result.transcript[-1] == "CALLER hangs up"  # the keys ran out at the message


# -- how requests reach the service -----------------------------------------------------------------


def test_behind_a_reverse_proxy_requests_are_signed_for_the_public_url(settings):
    running, server = start_line(settings, public_base_url=BASE_URL)  # the app knows only https://ivr.example.com
    try:
        proxied = Line(running.url, ACCOUNT_SID, AUTH_TOKEN, public_base_url=BASE_URL)
        result = running.call("1,1,rec,1,-", language="it", line=proxied)
        assert result.ok, result.problems
        assert len(running.tickets()) == 1
    finally:
        server.shutdown()  # type: ignore[attr-defined]
        running.recordings.close()
        running.app.config["ENGINE"].dispose()


def test_a_call_signed_with_another_auth_token_is_refused(line):
    intruder = Line(line.url, ACCOUNT_SID, "not-the-auth-token", public_base_url=line.url)
    result = line.call("1,1,rec,1,-", language="it", line=intruder)

    assert not result.ok
    assert any(problem.endswith("/twilio/voice answered 403") for problem in result.problems)
    assert "the status callback answered 403" in result.problems
    assert "LINE (en): We are sorry, an application error has occurred. Goodbye." in result.transcript
    assert line.tickets() == []


def test_a_service_that_is_not_running_is_reported():
    caller = ScriptedCaller.from_keys("1")
    result = SimulatedCall(
        Line("http://127.0.0.1:9", ACCOUNT_SID, AUTH_TOKEN), caller, from_=GIULIA, to=LINE_NUMBER, echo=lambda _: None
    ).run()
    assert result.problems == ["could not reach the service at http://127.0.0.1:9: is it running?"]


def test_twiml_twilio_would_reject_is_reported_during_the_call():
    service = Flask("broken")

    @service.post("/twilio/voice")
    def voice() -> Response:
        return Response('<Response><Say>Hello<Gather numDigits="0"/></Say></Response>', mimetype="text/xml")

    @service.post("/twilio/status")
    def status() -> Response:
        return Response(status=204)

    url, server = serve(service)
    try:
        caller = ScriptedCaller.from_keys("")
        result = SimulatedCall(Line(url, ACCOUNT_SID, AUTH_TOKEN), caller, from_=GIULIA, to=LINE_NUMBER).run()
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert not result.ok
    assert any("<Gather> is not allowed inside <Say>" in problem for problem in result.problems)


# -- scripts and the command ---------------------------------------------------------------------------


def test_a_script_checks_what_the_line_says_before_each_answer(line, tmp_path):
    script = tmp_path / "new_ticket.txt"
    script.write_text(
        "# what the line says -> what the caller does\n"
        "Benvenuto -> -\n"
        "Officine Brambilla\n"
        "Per una nuova richiesta -> 1\n"
        "Quanto è grave -> 1\n"
        "segnale acustico -> rec\n"
        "Per confermare -> 1\n"
        "Abbiamo aperto la richiesta -> -\n"
        "Arrivederci\n",
        encoding="utf-8",
    )
    result = line.call(caller=ScriptedCaller.from_file(script))

    assert result.ok, result.problems
    assert len(line.tickets()) == 1


def test_a_script_that_does_not_fit_the_call_fails_it(line):
    result = line.call(caller=ScriptedCaller.from_script("Benvenuto -> -\nFor a new support request -> 1\n"))

    assert not result.ok
    assert result.problems[0].startswith("script: expected the line to say 'For a new support request', but it said:")
    assert result.transcript[-1] == "CALLER hangs up"


def test_the_call_command_prints_the_transcript(line):
    runner = line.app.test_cli_runner()
    options = "--lang en --keys 1,1,rec,1,- --recording-port 0 --linger 0".split()
    args = ["call", "--url", line.url, "--from", GIULIA, *options]
    outcome = runner.invoke(args=args)

    assert outcome.exit_code == 0, outcome.output
    assert "LINE (en): For a new support request, press 1." in outcome.stdout
    assert "CALLER presses 9" in outcome.stdout
    assert "TWILIO_RECORDING_HOSTS=api.twilio.com,127.0.0.1:" in outcome.stderr  # the worker could not fetch it
    assert AUTH_TOKEN not in outcome.output
    assert len(line.tickets()) == 1


def test_the_call_command_waits_for_the_worker_to_fetch_the_recording(line, tmp_path):
    worker_fetch = threading.Thread(target=fetch_the_ticket_recording, args=(line, tmp_path), daemon=True)
    worker_fetch.start()
    options = "--keys -,1,1,rec,1,- --recording-port 0 --linger 20".split()
    args = ["call", "--url", line.url, "--from", GIULIA, *options]
    outcome = line.app.test_cli_runner().invoke(args=args)
    worker_fetch.join(10)

    assert outcome.exit_code == 0, outcome.output
    assert "the worker fetched the recording" in outcome.stderr


def fetch_the_ticket_recording(line: RunningLine, dest: Path) -> None:
    """What the worker does once the ticket is open: download its recording."""
    for _ in range(200):
        tickets = line.tickets()
        if tickets and tickets[0].recording_url:
            ticket = tickets[0]
            download_recording(
                ticket.recording_url,
                ticket.recording_sid,
                dest,
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
                allowed_hosts=[urlsplit(ticket.recording_url).netloc],
            )
            return
        time.sleep(0.05)


def test_a_caller_at_the_terminal_types_keys_and_the_message(line):
    runner = line.app.test_cli_runner()
    typed = "\n1\n1\nIl server di posta non risponde.\n1\n\n"  # silence at the welcome, ..., silence at the end
    args = ["call", "--url", line.url, "--from", GIULIA, *"--recording-port 0 --linger 0".split()]
    outcome = runner.invoke(args=args, input=typed)

    assert outcome.exit_code == 0, outcome.output
    assert 'CALLER says: "Il server di posta non risponde." (recording' in outcome.stdout
    assert "LINE (it): Grazie per aver chiamato. Arrivederci." in outcome.stdout
    assert len(line.tickets()) == 1


def test_the_call_command_fails_when_the_service_is_not_running(line):
    outcome = line.app.test_cli_runner().invoke(args=["call", "--url", "http://127.0.0.1:9", "--keys", "1"])
    assert outcome.exit_code == 1
    assert "could not reach the service at http://127.0.0.1:9" in outcome.output


# -- the caller's answers ------------------------------------------------------------------------------


KEYS_QUESTION = Question("keys", ())
MESSAGE_QUESTION = Question("message", ())


@pytest.mark.parametrize(
    "pressed, gather, sent",
    [
        ("1", '<Gather numDigits="1"/>', ("1", "")),
        ("12", '<Gather numDigits="1"/>', ("1", "")),
        ("2002#", '<Gather finishOnKey="#"/>', ("2002", "#")),
        ("2002", '<Gather finishOnKey="#"/>', ("2002", "")),
        ("#", '<Gather finishOnKey="#"/>', ("", "#")),  # # alone is no input
    ],
)
def test_keys_are_sent_as_twilio_sends_digits(pressed, gather, sent):
    from xml.etree import ElementTree

    assert gathered_digits(pressed, ElementTree.fromstring(gather)) == sent


def test_answers_that_do_not_fit_the_question_are_explained():
    with pytest.raises(ScriptError, match="recording a message here"):
        parse_answer("1", MESSAGE_QUESTION)
    with pytest.raises(ScriptError, match="asks for keys here"):
        parse_answer("rec", KEYS_QUESTION)
    with pytest.raises(ScriptError, match="takes keys, not speech"):
        parse_answer("say:hello", KEYS_QUESTION)


# -- the TwiML check -------------------------------------------------------------------------------------

DOC_URL = "https://ivr.example.com/twilio/step/main_menu"


def test_the_apology_of_the_fallback_url_passes_the_check(settings):
    app = create_app(settings)
    params = {"CallSid": "CA" + "2" * 32, "AccountSid": ACCOUNT_SID, "From": GIULIA, "ErrorCode": "11200"}
    url = f"{BASE_URL}/twilio/fallback"
    response = app.test_client().post(
        "/twilio/fallback", data=params, headers={"X-Twilio-Signature": sign(url, params)}
    )
    assert response.status_code == 200
    assert check_twiml(response.get_data(as_text=True), url) == []
    app.config["ENGINE"].dispose()


def test_a_document_like_the_lines_passes_the_check():
    document = (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        '<Gather action="/twilio/step/main_menu" input="dtmf" method="POST" numDigits="1" timeout="6">'
        '<Say language="it-IT" voice="Polly.Bianca">Prema 1.</Say><Pause length="1"/></Gather>'
        '<Redirect method="POST">https://ivr.example.com/twilio/step/main_menu?event=silence</Redirect>'
        '<Record action="https://ivr.example.com/twilio/step/x" finishOnKey="#" maxLength="120" playBeep="true"'
        ' recordingStatusCallback="https://ivr.example.com/twilio/recording" recordingStatusCallbackEvent="completed'
        ' absent" recordingStatusCallbackMethod="POST" timeout="5" trim="trim-silence"/>'
        '<Dial action="https://ivr.example.com/twilio/step/d" method="POST" timeout="20"><Number>+390392847400</Number>'
        "</Dial><Hangup/></Response>"
    )
    assert check_twiml(document, DOC_URL) == []


@pytest.mark.parametrize(
    "document, problem",
    [
        (
            "<Response><Say>Hello<Gather/></Say></Response>",
            "Response/Say[1]/Gather[1]: <Gather> is not allowed inside <Say>",
        ),
        ("<Response><Gather><Gather/></Gather></Response>", "<Gather> is not allowed inside <Gather>"),
        (
            "<Response><Gather><Say>Hi<Gather/></Say></Gather></Response>",
            "Response/Gather[1]/Say[1]/Gather[1]: <Gather> is not allowed inside <Say>",
        ),
        ('<Response><Gather><Say loop="-1">Hi</Say></Gather></Response>', 'loop="-1": must be a whole number'),
        ('<Response><Dial><Number url="next">+39</Number></Dial></Response>', "no document URL to resolve it against"),
        ('<Response><Say colour="blue">Hi</Say></Response>', 'unknown attribute colour="blue" on <Say>'),
        ("<Response><Redirect>/twilio/voice</Redirect></Response>", "there is no document URL to resolve it against"),
        ('<Response><Gather action="next"/></Response>', "there is no document URL to resolve it against"),
        ('<Response><Gather numDigits="0"/></Response>', 'numDigits="0": must be a whole number of at least 1'),
        ('<Response><Gather method="PUT"/></Response>', 'method="PUT": must be one of GET, POST'),
        (
            '<Response><Record maxLength="20000"/></Response>',
            'maxLength="20000": must be a whole number from 2 to 14400',
        ),
        ('<Response><Gather finishOnKey="##"/></Response>', 'finishOnKey="##": must be one key'),
        ('<Response><Gather input="voice"/></Response>', 'input="voice": must be one or more of dtmf, speech'),
        ('<Response><Pause length="0"/></Response>', 'length="0": must be a whole number of at least 1'),
        ('<Response><Dial timeout="2">+390392847400</Dial></Response>', "must be a whole number from 5 to 600"),
        ('<Response><Record recordingStatusCallbackEvent="done"/></Response>', "in-progress, completed, absent"),
        ("<Response><Dial/></Response>", "<Dial> is empty"),
        ("<Response><Say/></Response>", "<Say> is empty"),
        ("<Response><Redirect/></Response>", "<Redirect> needs a URL"),
        ("<Response><Redirect>ftp://example.com/x</Redirect></Response>", "must be an http or https URL"),
        ("<Response><Speak>Hi</Speak></Response>", "<Speak> is not allowed inside <Response>"),
        ("<Response><Record><Say>Hi</Say></Record></Response>", "<Say> is not allowed inside <Record>"),
        ("<Say>Hi</Say>", "the root element is <Say>; TwiML needs <Response>"),
        ("<Response><Say>Hi</Response>", "not well-formed XML"),
    ],
)
def test_what_twilio_would_reject_is_reported(document, problem):
    problems = check_twiml(document, None)
    assert any(problem in found for found in problems), problems


def test_relative_urls_resolve_against_the_documents_url():
    assert check_twiml("<Response><Redirect>/twilio/voice</Redirect></Response>", DOC_URL) == []
    assert check_twiml('<Response><Gather action="main_menu?event=silence"/></Response>', DOC_URL) == []
