"""Step kinds of a voice menu, how each is rendered as TwiML and how each handles the caller's input.

A flow is a list of named steps. Each input (a key, silence, a recording, a transfer's end)
leads somewhere through a `Go`: the next step, side effects to run on the way, and a notice
to say first. `Go(AGAIN, ...)` asks the same step again, at most `max_attempts` times,
after which the step's `exhausted` route is taken, so a caller is never stranded.

Actions come in three roles, each registered in its own table: side effects (run on the
way), deciders (a Branch's question) and checkers (an Entry's check of the typed digits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field

from sqlalchemy.orm import Session

import prompts
from callflows.twiml import Response, Verbs
from helpdesk.access import LockReport, StatusGuard
from helpdesk.sla import SlaTable
from prompts import Pause, Speech
from storage.calls import CallRecord, CallTransaction
from storage.models import utcnow

AGAIN = "again"


@dataclass(frozen=True)
class Go:
    """Where an input leads."""

    step: str
    do: str | tuple[str, ...] | None = None  # side effects to run, in order, before entering `step`
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
class Prompted:
    """What every step that speaks has: its name and its prompt (prompt keys, or "@speaker" names)."""

    name: str
    _: KW_ONLY
    prompt: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Asking(Prompted):
    """What the steps that wait for the caller share: where silence and running out of attempts lead."""

    silence: Go
    exhausted: Go
    max_attempts: int = 3


@dataclass(frozen=True, kw_only=True)
class Menu(Asking):
    """Say the prompt, take one key."""

    options: Mapping[str, Go]
    silence: Go = again("no_input")
    other_key: Go = again("wrong_key")
    timeout: int = 6


@dataclass(frozen=True, kw_only=True)
class Entry(Asking):
    """Say the prompt, take a number typed and ended with #; the `check` checker turns it into an event."""

    check: str
    events: Mapping[str, Go]
    timeout: int = 10


@dataclass(frozen=True, kw_only=True)
class Record(Asking):
    """Say the prompt, record after the beep until # or the maximum length."""

    recorded: Go
    hung_up: Go
    max_attempts: int = 2
    purpose: str = "ticket"  # told to the recording callback: the call's ticket, or a message on a ticket


@dataclass(frozen=True, kw_only=True)
class Transfer(Prompted):
    """Dial the on-call technician; `no_answer` when nobody picks up."""

    answered: Go
    no_answer: Go


@dataclass(frozen=True)
class Branch:
    """Decide without asking: the `decide` decider returns the event."""

    name: str
    _: KW_ONLY
    decide: str
    events: Mapping[str, Go]


@dataclass(frozen=True)
class Hangup(Prompted):
    """Say the prompt and end the call."""


Step = Menu | Entry | Record | Transfer | Branch | Hangup


@dataclass
class Turn:
    """One webhook's worth of context: the call (read on first use), how to build URLs, what to say first.

    What only steers the menu travels in the step URLs Twilio signs: the language, the
    attempts at the step and the caller's ticket at hand in the status menu. So a key that
    leads to the next menu reads and writes nothing.
    Whatever may write asks `writing()` before touching the call (the engine does, before
    running an action), so that the call is read locked, once, and changed in one UPDATE.
    """

    db: CallTransaction  # the webhook's work on its call; the request commits it
    is_open: Callable[[], bool]  # business hours
    url: Callable[[str, Mapping[str, str]], str]  # url(step_name, query) -> absolute URL of the step
    recording_callback_url: Callable[[str], str]  # recording_callback_url(purpose) -> absolute URL
    max_recording_seconds: int
    dial_number: str | None
    dial_timeout: int
    timezone: str  # the help desk's, for the times the line reads
    status_guard: StatusGuard  # counts PIN attempts
    lock_report: LockReport  # where a PIN locked by guessing is reported
    form: Mapping[str, str] = field(default_factory=dict)
    url_language: str | None = None  # the language the step URL carries; the stored call's otherwise
    step: str | None = None  # the step being answered
    attempts: int = 0  # at that step, as the step URL carries them
    item: int = 0  # which of the caller's own tickets the status menu is at, as the step URL carries it
    notices: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    memo: dict[str, object] = field(default_factory=dict)  # what an action read once in this webhook, for the next
    sla_table: SlaTable | None = None  # the SLA table in force, for a new ticket's deadlines; None: the default

    @property
    def call(self) -> CallRecord:
        """The stored call, read on first use."""
        return self.db.call()

    @property
    def session(self) -> Session:
        """The ORM, in the webhook's transaction, for the heavy and rare work."""
        return self.db.session

    def writing(self) -> None:
        """Announce that this webhook may write, before it reads."""
        self.db.writing()

    @property
    def language(self) -> str:
        return self.url_language or self.call.language

    def set_language(self, language: str) -> None:
        self.db.change(language=language)
        self.url_language = language

    def step_url(self, step: str, event: str | None = None) -> str:
        """The URL of `step`, carrying the language, and the attempts and the ticket at hand when there are."""
        query = {"event": event} if event else {}
        query["lang"] = self.language
        if step == self.step and self.attempts:
            query["try"] = str(self.attempts)
        if self.item:
            query["item"] = str(self.item)
        return self.url(step, query)

    def note(self, moment: str) -> None:
        """Keep when something first happened in the call (`forwarded_at`, `status_heard_at`: for statistics)."""
        self.db.change(**{moment: utcnow()})

    def say(self, key: str, **values: object) -> None:
        """Queue a prompt to be said before the next step's own prompt."""
        self.notices.append((key, values))


# Actions by role, each registered with the flow in its own table:
SideEffect = Callable[[Turn, object], None]  # runs on the way to a step (a Go's `do`), given the Go's `arg`
Decider = Callable[[Turn], str]  # a Branch's `decide`: the event that picks the route
Checker = Callable[[Turn, str], str]  # an Entry's `check`: the typed digits (without #) to the event
Speaker = Callable[[Turn], Speech]  # what a prompt's "@name" item says
PromptValues = Callable[[Turn], Mapping[str, object]]  # what the flow's prompts put in their placeholders


def _no_values(turn: Turn) -> Mapping[str, object]:
    return {}


class FlowError(Exception):
    """The flow definition is inconsistent."""


class CallFlow:
    """A voice menu: named steps, its actions by role, and dynamic speech ("@name" items in prompts)."""

    def __init__(
        self,
        steps: list[Step],
        *,
        side_effects: Mapping[str, SideEffect] | None = None,
        deciders: Mapping[str, Decider] | None = None,
        checkers: Mapping[str, Checker] | None = None,
        speakers: Mapping[str, Speaker] | None = None,
        prompt_values: PromptValues = _no_values,
        pure: frozenset[str] = frozenset(),
    ):
        self.steps = {step.name: step for step in steps}
        self.order = [step.name for step in steps]
        self.start = self.order[0]
        self.side_effects = side_effects or {}
        self.deciders = deciders or {}
        self.checkers = checkers or {}
        self.speakers = speakers or {}
        self.prompt_values = prompt_values
        self.pure = pure  # actions (side effects, deciders) that change nothing stored: no lock for them
        problems = self.problems()
        if problems:
            raise FlowError("; ".join(problems))

    # -- walking the flow ------------------------------------------------------------

    def answer(self, turn: Turn) -> Response:
        """The first answer of a call."""
        return self.enter(turn, Go(self.start))

    def handle(self, turn: Turn, step_name: str, event: str | None) -> Response:
        """The answer to the caller's input at `step_name` (keys, recording or transfer result in the form).

        `turn.attempts` are the attempts at that step the step URL carried.
        """
        step = self.steps.get(step_name)
        if step is None:
            turn.step, turn.attempts = None, 0
            return self.enter(turn, Go(self.start))
        turn.step = step.name
        return self.enter(turn, self._route(step, turn, event), current=step)

    def enter(self, turn: Turn, route: Go, current: Step | None = None) -> Response:
        for _ in range(20):  # a Branch chain longer than this is a loop; problems() forbids it
            if route.notice:
                turn.say(route.notice)
            if route.step == AGAIN:
                if not isinstance(current, Asking):  # problems() allows AGAIN only where the step asks
                    raise FlowError(f"{current.name if current else 'the start'} cannot ask again")
                turn.attempts += 1
                if turn.attempts >= current.max_attempts:
                    route = current.exhausted
                    continue
                return self.render(current, turn)
            if any(action not in self.pure for action in route.actions):
                turn.writing()
            for action in route.actions:
                self.side_effects[action](turn, route.arg)
            step = self.steps[route.step]
            if step.name != turn.step:
                turn.step, turn.attempts = step.name, 0
            if isinstance(step, Branch):
                current = step
                if step.decide not in self.pure:
                    turn.writing()
                route = step.events[self.deciders[step.decide](turn)]
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
            turn.writing()
            return step.events[self.checkers[step.check](turn, digits.rstrip("#"))]
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

    def render(self, step: Step, turn: Turn) -> Response:
        response = Response()
        catalogue = prompts.catalogue(turn.language)
        speech: Speech = [catalogue.text(key, **values) for key, values in turn.notices]
        speech += self.speech(step, turn)
        turn.notices.clear()
        if isinstance(step, (Menu, Entry)):
            nested = Verbs()
            _speak(nested, speech, catalogue)
            response.gather(
                nested,
                input="dtmf",
                action=turn.step_url(step.name),
                method="POST",
                timeout=step.timeout,
                **({"num_digits": 1} if isinstance(step, Menu) else {"finish_on_key": "#"}),
            )
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
            turn.note("forwarded_at")  # the line dials a technician: a forwarded call
            _speak(response, speech, catalogue)
            response.dial(
                turn.dial_number or "", action=turn.step_url(step.name), method="POST", timeout=turn.dial_timeout
            )
        elif isinstance(step, Hangup):
            _speak(response, speech, catalogue)
            response.hangup()
        return response

    def speech(self, step: Step, turn: Turn) -> Speech:
        if not isinstance(step, Prompted):
            return []
        catalogue = prompts.catalogue(turn.language)
        speech: Speech = []
        for item in step.prompt:
            if item.startswith("@"):
                speech.extend(self.speakers[item[1:]](turn))
            else:
                speech.append(catalogue.text(item, **self.prompt_values(turn)))
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
                if route.step == AGAIN and not isinstance(step, Asking):
                    found.append(f"{step.name} ({label}) cannot ask again")
                found.extend(
                    f"{step.name} ({label}) runs unknown side effect {a!r}"
                    for a in route.actions
                    if a not in self.side_effects
                )
                for key in (route.notice,) if route.notice else ():
                    found.extend(_missing_prompt(step.name, key))
            for item in step.prompt if isinstance(step, Prompted) else ():
                if item.startswith("@"):
                    if item[1:] not in self.speakers:
                        found.append(f"{step.name} says unknown speech {item!r}")
                else:
                    found.extend(_missing_prompt(step.name, item))
            if isinstance(step, Entry) and step.check not in self.checkers:
                found.append(f"{step.name} uses unknown checker {step.check!r}")
            if isinstance(step, Branch) and step.decide not in self.deciders:
                found.append(f"{step.name} uses unknown decider {step.decide!r}")
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


def _speak(parent: Verbs, speech: Speech, catalogue: prompts.Catalogue) -> None:
    for part in speech:
        if isinstance(part, Pause):
            parent.pause(length=part.seconds)
        elif isinstance(part, tuple):  # (text, catalogue) said in another language's voice
            text, other = part
            parent.say(text, voice=other.voice, language=other.say_language)
        elif part:
            parent.say(part, voice=catalogue.voice, language=catalogue.say_language)
