"""Step kinds of a voice menu, how each is rendered as TwiML and how each handles the caller's input.

A flow is a list of named steps. Each input (a key, silence, a recording, a transfer's end)
leads somewhere through a `Go`: the next step, an action to run on the way, and a notice
to say first. `Go(AGAIN, ...)` asks the same step again, at most `max_attempts` times,
after which the step's `exhausted` route is taken, so a caller is never stranded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

import prompts
from prompts import Pause, Speech

AGAIN = "again"


@dataclass(frozen=True)
class Go:
    """Where an input leads."""

    step: str
    do: str | tuple[str, ...] | None = None  # actions to run, in order, before entering `step`
    arg: object = None
    notice: str | None = None  # a prompt key said before the next step's own prompt

    @property
    def actions(self) -> tuple[str, ...]:
        if self.do is None:
            return ()
        return (self.do,) if isinstance(self.do, str) else self.do


def go(step: str, do: str | tuple[str, ...] | None = None, arg: object = None, notice: str | None = None) -> Go:
    return Go(step, do, arg, notice)


def again(notice: str) -> Go:
    return Go(AGAIN, notice=notice)


@dataclass(frozen=True)
class Menu:
    """Say the prompt, take one key."""

    name: str
    prompt: tuple[str, ...]
    options: Mapping[str, Go]
    exhausted: Go
    silence: Go = again("no_input")
    other_key: Go = again("wrong_key")
    timeout: int = 6
    max_attempts: int = 3


@dataclass(frozen=True)
class Entry:
    """Say the prompt, take a number typed and ended with #; `check` turns it into an event."""

    name: str
    prompt: tuple[str, ...]
    check: str
    events: Mapping[str, Go]
    silence: Go
    exhausted: Go
    timeout: int = 10
    max_attempts: int = 3


@dataclass(frozen=True)
class Record:
    """Say the prompt, record after the beep until # or the maximum length."""

    name: str
    prompt: tuple[str, ...]
    recorded: Go
    hung_up: Go
    exhausted: Go
    silence: Go = again("describe_problem_silence")
    max_attempts: int = 2
    purpose: str = "ticket"  # told to the recording callback: the call's ticket, or a message on a ticket


@dataclass(frozen=True)
class Transfer:
    """Dial the on-call technician; `no_answer` when nobody picks up."""

    name: str
    prompt: tuple[str, ...]
    answered: Go
    no_answer: Go


@dataclass(frozen=True)
class Branch:
    """Decide without asking: the `decide` action returns an event."""

    name: str
    decide: str
    events: Mapping[str, Go]


@dataclass(frozen=True)
class Hangup:
    """Say the prompt and end the call."""

    name: str
    prompt: tuple[str, ...]


Step = Menu | Entry | Record | Transfer | Branch | Hangup


class CallState(Protocol):
    """What the engine needs of the stored call."""

    language: str
    step: str | None
    attempts: int


@dataclass
class Turn:
    """One webhook's worth of context: the call, how to build URLs, what to say first."""

    call: CallState
    session: Any  # the storage session the actions use; the request owns commit and rollback
    is_open: Callable[[], bool]  # business hours
    step_url: Callable[..., str]  # step_url(step_name, event=None) -> absolute URL
    recording_callback_url: Callable[[str], str]  # recording_callback_url(purpose) -> absolute URL
    max_recording_seconds: int
    dial_number: str | None
    dial_timeout: int
    form: Mapping[str, str] = field(default_factory=dict)
    timezone: str = "Europe/Rome"
    status_guard: Any = None  # callflows.status.StatusGuard: counts PIN attempts
    dispatch_email: str | None = None  # where a locked PIN is reported; None: not reported
    mail_from: str = "assistenza@example.com"  # the sender of what the line queues (its domain names Message-IDs)
    notices: list[Speech] = field(default_factory=list)

    def say(self, key: str, **values: object) -> None:
        """Queue a prompt to be said before the next step's own prompt."""
        self.notices.append([prompts.catalogue(self.call.language).text(key, **values)])


# An action takes the turn and the Go's `arg` and does its work. Used as a Branch's
# `decide` or an Entry's `check`, it returns the event that picks the route.
Action = Callable[[Turn, object], "str | None"]
Speaker = Callable[[Turn], Speech]


class FlowError(Exception):
    """The flow definition is inconsistent."""


class CallFlow:
    """A voice menu: named steps, actions, and dynamic speech ("@name" items in prompts)."""

    def __init__(self, steps: list[Step], actions: Mapping[str, Action], speakers: Mapping[str, Speaker]):
        self.steps = {step.name: step for step in steps}
        self.order = [step.name for step in steps]
        self.start = self.order[0]
        self.actions = actions
        self.speakers = speakers
        problems = self.problems()
        if problems:
            raise FlowError("; ".join(problems))

    # -- walking the flow ------------------------------------------------------------

    def answer(self, turn: Turn) -> VoiceResponse:
        """The first answer of a call."""
        return self.enter(turn, Go(self.start))

    def handle(self, turn: Turn, step_name: str, event: str | None) -> VoiceResponse:
        """The answer to the caller's input at `step_name` (keys, recording or transfer result in the form)."""
        step = self.steps.get(step_name)
        if step is None:
            return self.enter(turn, Go(self.start))
        if turn.call.step != step.name:
            # A stale or repeated request for an earlier step: count from there.
            turn.call.step, turn.call.attempts = step.name, 0
        return self.enter(turn, self._route(step, turn, event), current=step)

    def enter(self, turn: Turn, route: Go, current: Step | None = None) -> VoiceResponse:
        for _ in range(20):  # a Branch chain longer than this is a loop; problems() forbids it
            if route.notice:
                turn.say(route.notice)
            if route.step == AGAIN:
                assert current is not None
                turn.call.attempts += 1
                if turn.call.attempts >= current.max_attempts:  # type: ignore[union-attr]
                    route = current.exhausted  # type: ignore[union-attr]
                    continue
                return self.render(current, turn)
            for action in route.actions:
                self.actions[action](turn, route.arg)
            step = self.steps[route.step]
            if step.name != turn.call.step:
                turn.call.step, turn.call.attempts = step.name, 0
            if isinstance(step, Branch):
                current = step
                event = self.actions[step.decide](turn, None)
                route = step.events[event or ""]
                continue
            return self.render(step, turn)
        raise FlowError("too many steps without asking the caller")

    def _route(self, step: Step, turn: Turn, event: str | None) -> Go:
        digits = (turn.form.get("Digits") or "").strip()
        if isinstance(step, Menu):
            if event == "silence" or not digits:
                return step.silence
            return step.options.get(digits, step.other_key)
        if isinstance(step, Entry):
            if event == "silence" or not digits.rstrip("#"):
                return step.silence
            outcome = self.actions[step.check](turn, digits.rstrip("#"))
            return step.events[outcome or ""]
        if isinstance(step, Record):
            if turn.form.get("RecordingSid") and seconds(turn.form.get("RecordingDuration")) > 0:
                # Twilio reports a caller who hung up while recording with Digits=hangup.
                if turn.form.get("Digits") == "hangup" or turn.form.get("CallStatus") == "completed":
                    return step.hung_up
                return step.recorded
            return step.silence
        if isinstance(step, Transfer):
            if turn.form.get("DialCallStatus") in ("completed", "answered"):
                return step.answered
            return step.no_answer
        return Go(self.start)

    # -- TwiML -------------------------------------------------------------------------

    def render(self, step: Step, turn: Turn) -> VoiceResponse:
        response = VoiceResponse()
        speech = [part for notice in turn.notices for part in notice] + self.speech(step, turn)
        turn.notices.clear()
        catalogue = prompts.catalogue(turn.call.language)
        if isinstance(step, (Menu, Entry)):
            gather = Gather(
                input="dtmf",
                action=turn.step_url(step.name),
                method="POST",
                timeout=step.timeout,
                **({"num_digits": 1} if isinstance(step, Menu) else {"finish_on_key": "#"}),
            )
            _speak(gather, speech, catalogue)
            response.append(gather)
            # Say explicitly what silence does, rather than relying on Twilio's fall-through.
            response.redirect(turn.step_url(step.name, event="silence"), method="POST")
        elif isinstance(step, Record):
            _speak(response, speech, catalogue)
            response.record(
                action=turn.step_url(step.name),
                method="POST",
                max_length=turn.max_recording_seconds,
                finish_on_key="#",
                timeout=5,
                play_beep=True,
                trim="trim-silence",
                recording_status_callback=turn.recording_callback_url(step.purpose),
                recording_status_callback_method="POST",
                recording_status_callback_event="completed absent",
            )
            response.redirect(turn.step_url(step.name, event="silence"), method="POST")
        elif isinstance(step, Transfer):
            _speak(response, speech, catalogue)
            dial = Dial(action=turn.step_url(step.name), method="POST", timeout=turn.dial_timeout)
            dial.number(turn.dial_number or "")
            response.append(dial)
        elif isinstance(step, Hangup):
            _speak(response, speech, catalogue)
            response.hangup()
        return response

    def speech(self, step: Step, turn: Turn) -> Speech:
        catalogue = prompts.catalogue(turn.call.language)
        speech: Speech = []
        for item in getattr(step, "prompt", ()):
            if item.startswith("@"):
                speech.extend(self.speakers[item[1:]](turn))
            else:
                speech.append(catalogue.text(item, minutes=max(1, turn.max_recording_seconds // 60)))
        return speech

    # -- checks and description --------------------------------------------------------

    def routes(self, step: Step) -> list[tuple[str, Go]]:
        """Every (input, route) of a step."""
        if isinstance(step, Menu):
            pairs = [(f"key {k}", g) for k, g in step.options.items()]
            return pairs + [("other key", step.other_key), ("silence", step.silence), ("exhausted", step.exhausted)]
        if isinstance(step, Entry):
            pairs = [(f"typed: {e}", g) for e, g in step.events.items()]
            return pairs + [("silence", step.silence), ("exhausted", step.exhausted)]
        if isinstance(step, Record):
            return [
                ("recorded", step.recorded),
                ("hung up", step.hung_up),
                ("silence", step.silence),
                ("exhausted", step.exhausted),
            ]
        if isinstance(step, Transfer):
            return [("answered", step.answered), ("no answer", step.no_answer)]
        if isinstance(step, Branch):
            return [(f"{step.decide}: {e or '-'}", g) for e, g in step.events.items()]
        return []

    def problems(self) -> list[str]:
        """What is wrong with the flow: unknown targets, unreachable steps, missing prompts."""
        found = []
        for step in self.steps.values():
            for label, route in self.routes(step):
                if route.step != AGAIN and route.step not in self.steps:
                    found.append(f"{step.name} ({label}) leads to unknown step {route.step!r}")
                if route.step == AGAIN and isinstance(step, (Transfer, Branch)):
                    found.append(f"{step.name} ({label}) cannot ask again")
                found.extend(
                    f"{step.name} ({label}) runs unknown action {a!r}" for a in route.actions if a not in self.actions
                )
                for key in (route.notice,) if route.notice else ():
                    found.extend(_missing_prompt(step.name, key))
            for item in getattr(step, "prompt", ()):
                if item.startswith("@"):
                    if item[1:] not in self.speakers:
                        found.append(f"{step.name} says unknown speech {item!r}")
                else:
                    found.extend(_missing_prompt(step.name, item))
            for name in (getattr(step, "check", None), getattr(step, "decide", None)):
                if name and name not in self.actions:
                    found.append(f"{step.name} uses unknown action {name!r}")
        reachable = {self.start}
        frontier = [self.start]
        while frontier:
            for _, route in self.routes(self.steps[frontier.pop()]):
                if route.step in self.steps and route.step not in reachable:
                    reachable.add(route.step)
                    frontier.append(route.step)
        found.extend(f"{name} is unreachable" for name in self.order if name not in reachable)
        return found

    def table(self) -> list[tuple[str, str, str]]:
        """(step, input, next) rows: the flow as a table, for the README and for reviews."""
        rows = []
        for name in self.order:
            for label, route in self.routes(self.steps[name]):
                target = "ask again" if route.step == AGAIN else route.step
                if route.do:
                    target += f" (after {', '.join(route.actions)})"
                rows.append((name, label, target))
        return rows


def seconds(value: str | None) -> int:
    """A duration Twilio sent (RecordingDuration, CallDuration); 0 when missing or malformed."""
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


def _missing_prompt(step_name: str, key: str) -> list[str]:
    return [
        f"{step_name}: prompt {key!r} missing in {language}"
        for language in prompts.LANGUAGES
        if key not in prompts.catalogue(language).texts
    ]


def _speak(parent: VoiceResponse | Gather, speech: Speech, catalogue: prompts.Catalogue) -> None:
    for part in speech:
        if isinstance(part, Pause):
            parent.pause(length=part.seconds)
        elif isinstance(part, tuple):  # (text, catalogue) said in another language's voice
            text, other = part
            parent.say(text, voice=other.voice, language=other.say_language)
        elif part:
            parent.say(part, voice=catalogue.voice, language=catalogue.say_language)
