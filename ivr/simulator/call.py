"""A phone call placed the way Twilio places it, against the running service, with a transcript.

Every request is a form-encoded webhook signed with the auth token, carrying Twilio's call
parameters. The TwiML answers are checked (`twiml_check`) and followed verb by verb: what
the line says goes into the transcript, a Gather or a Record asks the caller, silence falls
through to the next verb, a Record's message is served over loopback and announced with
the Record action and the recording status callback, a Dial rings (and is not answered
unless the caller says so). The status callback ends the call.

URLs in the TwiML are absolute and name the host Twilio would call (PUBLIC_BASE_URL). They
are signed as given and sent to `Line.url`, as a reverse proxy in front of the service would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import urljoin, urlsplit, urlunsplit
from xml.etree import ElementTree

import requests

from ivr.simulator.caller import Answer, Caller, HangUp, Message, Press, Question, ScriptError, Speak
from ivr.simulator.media import CallerVoice, RecordingServer, speak_aloud
from ivr.simulator.twilio_requests import (
    TwilioCall,
    call_ended,
    dial_ended,
    keys_pressed,
    message_left,
    new_sid,
    recording,
    recording_status,
    words_spoken,
)
from ivr.simulator.twiml_check import check_twiml

MAX_REQUESTS = 200  # more webhooks than this in one call is a loop
WEBHOOK_TIMEOUT = 15  # seconds, as Twilio waits for a webhook
TWILIO_APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."


@dataclass(frozen=True)
class Line:
    """The service being called: where requests go, and the base URL Twilio is configured with."""

    url: str  # where the requests are sent, e.g. http://127.0.0.1:5000
    account_sid: str
    auth_token: str = field(repr=False)
    public_base_url: str | None = None  # what Twilio calls (and signs); the service's PUBLIC_BASE_URL
    voice_path: str = "/twilio/voice"
    status_path: str = "/twilio/status"

    def public(self, path: str) -> str:
        return (self.public_base_url or self.url).rstrip("/") + path

    def target(self, url: str) -> str:
        """Where a request for `url` is sent: the same path and query, on `self.url`."""
        parts, base = urlsplit(url), urlsplit(self.url)
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))


@dataclass(frozen=True)
class Document:
    """A TwiML answer and the URL it came from (what relative URLs in it resolve against)."""

    url: str
    root: ElementTree.Element


@dataclass
class CallResult:
    call_sid: str
    transcript: list[str]
    problems: list[str]  # TwiML Twilio would reject, failed webhooks, a script that did not fit
    recording_sids: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class CallOver(Exception):
    """The call has ended (the line or the caller hung up, or the service failed)."""


class SimulatedCall:
    """One call from `from_` to `to`, answered by `caller`."""

    def __init__(
        self,
        line: Line,
        caller: Caller,
        *,
        from_: str,
        to: str,
        voice: CallerVoice | None = None,
        recordings: RecordingServer | None = None,
        answer_dial: bool = False,
        speak: bool = False,
        echo: Callable[[str], None] = print,
        http: requests.Session | None = None,
    ) -> None:
        self.line, self.caller = line, caller
        self.voice = voice or CallerVoice()
        self.recordings = recordings
        self.answer_dial, self.speak, self.echo = answer_dial, speak, echo
        self.http = http or requests.Session()
        self.twilio = TwilioCall(line.account_sid, line.auth_token, from_, to)
        self.call_sid = self.twilio.call_sid
        self.transcript: list[str] = []
        self.problems: list[str] = []
        self.recording_sids: list[str] = []
        self.said: list[str] = []  # what the line said since the caller's last answer
        self.seconds = 0.0  # the call's length, as it would last on a phone
        self.requests = 0

    # -- the call --------------------------------------------------------------------------

    def run(self) -> CallResult:
        try:
            document: Document | None = self.webhook(self.line.public(self.line.voice_path), {})
            self.twilio.status = "in-progress"
            while document is not None:
                document = self.follow(document)
            self.note("HANGUP")
        except CallOver:
            pass
        except ScriptError as error:
            self.problem(f"script: {error}")
            self.note("CALLER hangs up")
        except requests.ConnectionError:
            self.problem(f"could not reach the service at {self.line.url}: is it running?")
            return self.result()
        self.check_script_end()
        self.status_callback()
        return self.result()

    def follow(self, document: Document) -> Document | None:
        """Run the verbs of `document`; the next document, or None at its end."""
        for verb in document.root:
            handle = getattr(self, f"verb_{verb.tag.lower()}", None)
            if handle is None:
                self.note(f"({verb.tag} is not simulated: skipped)")
                continue
            following = handle(verb, document)
            if following is not None:
                return following
        return None

    def result(self) -> CallResult:
        return CallResult(self.call_sid, self.transcript, self.problems, self.recording_sids)

    # -- verbs: each returns the next document, or None to go on with the next verb --------

    def verb_say(self, verb: ElementTree.Element, _: Document) -> None:
        text = " ".join("".join(verb.itertext()).split())
        tag = verb.get("language", "en-US")
        loop = verb.get("loop", "1")
        times = "" if loop == "1" else " (repeated)" if loop == "0" else f" (x{loop})"
        self.said.append(text)
        self.note(f"LINE ({tag.split('-')[0].lower()}): {text}{times}")
        self.seconds += 0.4 * len(text.split())
        if self.speak:
            speak_aloud(text, tag)

    def verb_play(self, verb: ElementTree.Element, _: Document) -> None:
        what = (verb.text or "").strip() or f"the keys {verb.get('digits')}"
        self.note(f"LINE plays {what}")

    def verb_pause(self, verb: ElementTree.Element, _: Document) -> None:
        seconds = whole(verb.get("length"), 1)
        self.note(f"... pause {seconds} s")
        self.seconds += seconds
        if self.speak:
            time.sleep(seconds)

    def verb_gather(self, verb: ElementTree.Element, document: Document) -> Document | None:
        for prompt in verb:
            if prompt.tag in ("Say", "Play", "Pause"):
                getattr(self, f"verb_{prompt.tag.lower()}")(prompt, document)
        inputs = verb.get("input", "dtmf").split()
        question = Question("keys", tuple(self.said), "dtmf" in inputs, "speech" in inputs)
        answer = self.ask(question)
        timeout = whole(verb.get("timeout"), 5)
        params: dict[str, str] = {}
        if isinstance(answer, Press):
            digits, finished_on = gathered_digits(answer.digits, verb)
            self.note(f"CALLER presses {answer.digits}")
            if digits:
                params = keys_pressed(digits, finished_on)
        elif isinstance(answer, Speak):
            self.note(f'CALLER says: "{answer.words}"')
            params = words_spoken(answer.words)
        elif isinstance(answer, HangUp):
            self.hang_up_caller()
        else:
            self.note(f"CALLER says nothing ({timeout} s)")
        self.seconds += 2 if params else timeout
        if not params and verb.get("actionOnEmptyResult") != "true":
            return None  # no input: Twilio goes on with the next verb
        return self.webhook(self.action_url(verb, document), params, verb.get("method", "POST"))

    def verb_record(self, verb: ElementTree.Element, document: Document) -> Document | None:
        if verb.get("playBeep", "true") == "true":
            self.note("(beep)")
        answer = self.ask(Question("message", tuple(self.said)))
        events = verb.get("recordingStatusCallbackEvent", "completed").replace(",", " ").split()
        if isinstance(answer, HangUp):
            self.hang_up_caller()
        if not isinstance(answer, Message):
            self.note("CALLER says nothing (the recording is empty)")
            self.seconds += whole(verb.get("timeout"), 5)
            if "absent" in events:
                self.recording_callback(verb, document, recording(new_sid("RE"), 0), "absent")
            return None  # Twilio does not call the action of an empty recording: the next verb
        return self.leave_message(verb, document, answer, events)

    def verb_dial(self, verb: ElementTree.Element, document: Document) -> Document | None:
        called = [(verb.text or "").strip()] + [f"{n.tag}: {(n.text or '').strip()}" for n in verb]
        called = [c.removeprefix("Number: ") for c in called if c]
        timeout = whole(verb.get("timeout"), 30)
        if self.answer_dial:
            self.note(f"DIAL {', '.join(called)} (answered; the call lasts 60 s)")
            params = dial_ended("completed", 60)
            self.seconds += 60
        else:
            self.note(f"DIAL {', '.join(called)} (no answer after {timeout} s)")
            params = dial_ended("no-answer")
            self.seconds += timeout
        if verb.get("action") is None:
            return None
        return self.webhook(self.action_url(verb, document), params, verb.get("method", "POST"))

    def verb_redirect(self, verb: ElementTree.Element, document: Document) -> Document | None:
        return self.webhook(urljoin(document.url, (verb.text or "").strip()), {}, verb.get("method", "POST"))

    def verb_hangup(self, verb: ElementTree.Element, _: Document) -> None:
        self.note("HANGUP")
        raise CallOver

    def verb_reject(self, verb: ElementTree.Element, _: Document) -> None:
        self.note(f"REJECTED ({verb.get('reason', 'rejected')})")
        self.twilio.status = "busy" if verb.get("reason") == "busy" else "no-answer"
        raise CallOver

    # -- the caller ------------------------------------------------------------------------

    def ask(self, question: Question) -> Answer:
        answer = self.caller.answer(question)
        self.said = []
        return answer

    def hang_up_caller(self) -> NoReturn:
        self.note("CALLER hangs up")
        raise CallOver

    def leave_message(
        self, verb: ElementTree.Element, document: Document, message: Message, events: list[str]
    ) -> Document | None:
        audio = self.voice.message(message.words)
        seconds = min(max(1, math.ceil(audio.seconds)), whole(verb.get("maxLength"), 3600))
        self.note(f"CALLER says: {audio.shown_as} (recording {seconds} s)")
        self.seconds += seconds
        sid = new_sid("RE")
        url = None
        if self.recordings is not None:
            url = self.recordings.publish(sid, audio.wav)
            self.recording_sids.append(sid)
        else:
            self.problem("no recording server: the message was not served")
        recorded = recording(sid, seconds, url)
        if "in-progress" in events:
            self.recording_callback(verb, document, recorded, "in-progress")
        finish_keys = verb.get("finishOnKey", "1234567890*#")
        if message.then_hang_up:
            self.note("CALLER hangs up")
            self.twilio.status = "completed"
        finished_on = "#" if "#" in finish_keys else finish_keys[:1]
        params = message_left(recorded, finished_on, hung_up=message.then_hang_up)
        following = self.webhook(self.action_url(verb, document), params, verb.get("method", "POST"))
        if "completed" in events:
            self.recording_callback(verb, document, recorded, "completed")
        if message.then_hang_up:
            raise CallOver
        return following

    def check_script_end(self) -> None:
        """A script must have been played to its end, unless the call already failed."""
        at_the_end = getattr(self.caller, "at_the_end", None)
        if at_the_end is not None and not self.problems:
            for problem in at_the_end(self.said):
                self.problem(f"script: {problem}")

    # -- requests --------------------------------------------------------------------------

    def webhook(self, url: str, extra: Mapping[str, str], method: str = "POST") -> Document:
        """Request the TwiML at `url`; a failed or unreadable answer ends the call like Twilio would."""
        try:
            response = self.send(url, extra, method)
        except requests.Timeout:
            self.application_error(f"{method} {url} did not answer within {WEBHOOK_TIMEOUT} s")
        if response.status_code != 200:
            self.application_error(f"{method} {url} answered {response.status_code}")
        kind = response.headers.get("Content-Type", "").split(";")[0].strip()
        if kind not in ("text/xml", "application/xml"):
            self.application_error(f"{method} {url} answered {kind or 'no content type'}, not TwiML")
        for problem in check_twiml(response.text, url):
            self.problem(f"TwiML from {urlsplit(url).path}: {problem}")
        try:
            return Document(url, ElementTree.fromstring(response.text))
        except ElementTree.ParseError:
            self.application_error(f"{method} {url} answered XML that does not parse")

    def recording_callback(
        self, verb: ElementTree.Element, document: Document, recorded: Mapping[str, str], status: str
    ) -> None:
        callback = verb.get("recordingStatusCallback")
        if not callback:
            return
        params = recording_status(recorded, status)
        method = verb.get("recordingStatusCallbackMethod", "POST")
        response = self.send(urljoin(document.url, callback), params, method, about_call=False)
        if not response.ok:
            self.problem(f"the recording status callback answered {response.status_code}")

    def status_callback(self) -> None:
        if self.twilio.status in ("ringing", "in-progress"):
            self.twilio.status = "completed"
        extra = call_ended(math.ceil(self.seconds), self.twilio.status)
        try:
            response = self.send(self.line.public(self.line.status_path), extra, "POST")
        except requests.ConnectionError:
            self.problem(f"could not reach the service at {self.line.url} for the status callback")
            return
        if not response.ok:
            self.problem(f"the status callback answered {response.status_code}")

    def send(self, url: str, extra: Mapping[str, str], method: str, *, about_call: bool = True) -> requests.Response:
        """A signed request, as Twilio makes it: POST form-encoded, or GET with the parameters in the query."""
        self.requests += 1
        if self.requests > MAX_REQUESTS:
            self.problem(f"more than {MAX_REQUESTS} webhooks in one call: a loop?")
            raise CallOver
        request = self.twilio.request(url, extra, method, about_call=about_call)
        headers = {"User-Agent": "TwilioProxy/1.1 (ivr call simulator)", **request.headers}
        target = self.line.target(request.url)
        if method == "GET":
            return self.http.get(target, headers=headers, timeout=WEBHOOK_TIMEOUT)
        return self.http.post(target, data=request.params, headers=headers, timeout=WEBHOOK_TIMEOUT)

    def application_error(self, problem: str) -> NoReturn:
        self.problem(problem)
        self.note(f"LINE (en): {TWILIO_APPLICATION_ERROR}")
        self.note("HANGUP")
        raise CallOver

    @staticmethod
    def action_url(verb: ElementTree.Element, document: Document) -> str:
        return urljoin(document.url, verb.get("action") or document.url)

    # -- the transcript --------------------------------------------------------------------

    def note(self, line: str) -> None:
        self.transcript.append(line)
        self.echo(line)

    def problem(self, problem: str) -> None:
        self.problems.append(problem)
        self.note(f"ERROR: {problem}")


def whole(value: str | None, default: int) -> int:
    """An attribute's whole number, or `default` when it is missing or not one (the check reports it)."""
    return int(value) if value is not None and value.strip().isdigit() else default


def gathered_digits(pressed: str, gather: ElementTree.Element) -> tuple[str, str]:
    """What Twilio sends as Digits for keys pressed at `gather`, and the key that finished them.

    Input stops at numDigits keys or at the finishOnKey (which is not sent); the finishOnKey
    alone, with no digits before it, is no input at all.
    """
    finish = gather.get("finishOnKey", "#")
    limit = whole(gather.get("numDigits"), 0) or len(pressed)
    digits = ""
    for key in pressed:
        if finish and key == finish:
            return digits, key
        digits += key
        if len(digits) >= limit:
            break
    return digits, ""
