"""What the simulated caller does when the line waits for them: keys, words, a message, silence, hanging up.

A caller answers `Question`s. `ScriptedCaller` takes its answers from `--keys "1,1,#"` or
from a script file that also says what the line must have said first; `TerminalCaller`
asks whoever sits at the terminal. Answers are written the same way in all three:

    1  2002#  *      keys (a Gather)
    -  (empty)       silence
    hangup           hang up (during a message: after speaking it)
    say:words        words spoken, where the question takes speech
    rec  rec words   a message after the beep (a Record): the --recording file or the words
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Question:
    """The line is waiting: for keys (a Gather) or for a message after the beep (a Record)."""

    kind: str  # "keys" | "message"
    said: tuple[str, ...]  # what the line said since the caller's last answer
    accepts_keys: bool = True
    accepts_speech: bool = False


@dataclass(frozen=True)
class Press:
    digits: str


@dataclass(frozen=True)
class Speak:
    words: str


@dataclass(frozen=True)
class Message:
    """Speak after the beep: `words` (made into audio), or None for the prepared recording."""

    words: str | None = None
    then_hang_up: bool = False


@dataclass(frozen=True)
class Silence:
    pass


@dataclass(frozen=True)
class HangUp:
    pass


Answer = Press | Speak | Message | Silence | HangUp


class ScriptError(Exception):
    """The script does not fit the call: a wrong kind of answer, or the line did not say what was expected."""


class Caller(Protocol):
    def answer(self, question: Question) -> Answer: ...


_KEYS = re.compile(r"[0-9*#]+")


def parse_answer(text: str, question: Question, *, free_text: bool = False) -> Answer:
    """The answer written as `text` to `question`; `free_text` takes plain words as speech or a message."""
    token = text.strip()
    if token in ("", "-"):
        return Silence()
    if token.lower() == "hangup":
        return Message(then_hang_up=True) if question.kind == "message" else HangUp()
    if question.kind == "message":
        if token.lower() == "rec" or token.lower().startswith("rec "):
            return Message(token[3:].strip() or None)
        if free_text and not _KEYS.fullmatch(token):
            return Message(token)
        raise ScriptError(f"the line is recording a message here: answer rec, rec <words>, - or hangup, not {token!r}")
    if token.lower().startswith("say:") or (free_text and not _KEYS.fullmatch(token)):
        if not question.accepts_speech:
            raise ScriptError(f"this question takes keys, not speech ({token!r})")
        return Speak(token.split(":", 1)[1].strip() if token.lower().startswith("say:") else token)
    if _KEYS.fullmatch(token):
        if not question.accepts_keys:
            raise ScriptError(f"this question takes speech only, not keys ({token!r})")
        return Press(token)
    raise ScriptError(f"the line asks for keys here: answer keys like 1 or 2002#, - or hangup, not {token!r}")


@dataclass(frozen=True)
class ScriptStep:
    """One answer, after the line has said each of `expect` (parts of its words, any case)."""

    answer: str | None
    expect: tuple[str, ...] = ()


@dataclass
class ScriptedCaller:
    """Answers from a list, checking what the line said first; when the list runs out, hangs up."""

    steps: list[ScriptStep]
    _next: int = 0

    @classmethod
    def from_keys(cls, keys: str) -> ScriptedCaller:
        """From `--keys "-,1,1,rec,1,-"`."""
        return cls([ScriptStep(token.strip()) for token in keys.split(",")] if keys.strip() else [])

    @classmethod
    def from_script(cls, text: str) -> ScriptedCaller:
        """From a script: lines `what the line says -> answer`; a line without `->` is only an expectation.

        Expectations are checked against what the line says before the next answer; those
        left at the end of the script are checked against what it says until the call ends.
        """
        steps: list[ScriptStep] = []
        pending: list[str] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            expected, arrow, answer = line.partition("->")
            if expected.strip():
                pending.append(expected.strip())
            if arrow:
                steps.append(ScriptStep(answer.strip(), tuple(pending)))
                pending = []
        if pending:
            steps.append(ScriptStep(None, tuple(pending)))
        return cls(steps)

    @classmethod
    def from_file(cls, path: Path) -> ScriptedCaller:
        return cls.from_script(path.read_text(encoding="utf-8"))

    def answer(self, question: Question) -> Answer:
        step = self._take()
        if step is None:
            return HangUp()
        check_said(step.expect, question.said)
        return parse_answer(step.answer or "", question)

    def at_the_end(self, said: Iterable[str]) -> list[str]:
        """What is wrong at the end of the call: expectations the line never met."""
        step = self._take()
        if step is None:
            return []
        if step.answer is not None:
            return [f"the call ended before the script's answer {step.answer!r}"]
        try:
            check_said(step.expect, tuple(said))
        except ScriptError as error:
            return [str(error)]
        return []

    def unused(self) -> list[str]:
        return [step.answer or "" for step in self.steps[self._next :] if step.answer is not None]

    def _take(self) -> ScriptStep | None:
        if self._next >= len(self.steps):
            return None
        self._next += 1
        return self.steps[self._next - 1]


def check_said(expected: Iterable[str], said: tuple[str, ...]) -> None:
    heard = " ".join(said).casefold()
    for part in expected:
        if part.casefold() not in heard:
            raise ScriptError(f"expected the line to say {part!r}, but it said: {' '.join(said) or '(nothing)'}")


@dataclass
class TerminalCaller:
    """Asks the person at the terminal; end of input hangs up. `queued` answers go first, unasked."""

    read: Callable[[str], str] = input
    write: Callable[[str], None] = print
    queued: list[str] = field(default_factory=list)
    hints_shown: set[str] = field(default_factory=set)

    def answer(self, question: Question) -> Answer:
        if self.queued:
            return parse_answer(self.queued.pop(0), question)
        while True:
            try:
                text = self.read(self._prompt(question))
            except EOFError:
                return HangUp()
            try:
                return parse_answer(text, question, free_text=True)
            except ScriptError as error:
                self.write(f"  {error}")

    def _prompt(self, question: Question) -> str:
        if question.kind not in self.hints_shown:
            self.hints_shown.add(question.kind)
            if question.kind == "message":
                self.write("  (after the beep: type what you say, or rec for the --recording file or a sample message;")
                self.write("   Enter alone stays silent; hangup says the message and hangs up)")
            else:
                speech = ", or words" if question.accepts_speech else ""
                self.write(f"  (type keys like 1 or 2002#{speech}; Enter alone stays silent; hangup hangs up)")
        return "  message> " if question.kind == "message" else "  keys> "
