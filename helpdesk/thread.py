"""A ticket's thread in words: each entry's kind and facts, said in the reader's language.

Each language has one catalogue, `helpdesk/thread_<lang>.toml`, keyed by kind (its header
tells the shapes of an entry). A kind or a word missing in a language is said in Italian,
the dispatchers' language; an entry that cannot be said at all (an unknown kind, a
missing fact) shows its facts as they are. Rendering never raises. Times are shown on
the help desk's clock, Europe/Rome. The same catalogues word why an action on a ticket
was refused (`refusal`, from its code and facts: helpdesk.actions.ActionRefused).
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prompts import DEFAULT_LANGUAGE, LANGUAGES
from storage.models import TicketEvent

# A catalogue entry: a template, alternatives (the first whose facts are given), or sentences by fact.
Entry = str | list[str] | dict[str, str]

HELP_DESK_ZONE = ZoneInfo("Europe/Rome")  # the console's clock (issue 9): a {fact:time} is shown in it


@dataclass(frozen=True)
class Catalogue:
    language: str
    kinds: dict[str, Entry]
    words: dict[str, dict[str, str]]  # vocabulary name -> code -> words
    thousands_separator: str
    refusals: dict[str, Entry]  # why an action was refused, by code


@cache
def catalogue(language: str) -> Catalogue:
    """The thread's catalogue in `language`; an unknown language gets the default one."""
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    data = tomllib.loads(Path(__file__).with_name(f"thread_{language}.toml").read_text(encoding="utf-8"))
    return Catalogue(language, data["kinds"], data["words"], data["thousands_separator"], data.get("refusals", {}))


def render(event: TicketEvent, language: str) -> str:
    """The entry's sentence in `language`."""
    return render_facts(event.kind, event.facts, language)


def render_facts(kind: str, facts: Mapping[str, Any], language: str) -> str:
    """The sentence for an entry of `kind` with `facts`, in `language`, else Italian, else the facts as they are."""
    if set(facts) == {"note"}:  # someone's own words, or an entry written before facts were kept
        return str(facts["note"])
    for tongue in dict.fromkeys([catalogue(language).language, DEFAULT_LANGUAGE]):
        entry = catalogue(tongue).kinds.get(kind)
        if entry is None:
            continue
        try:
            return _fill(entry, facts, _Formatter(tongue))
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            continue  # a missing or odd fact: the next language, or the facts themselves
    return as_is(kind, facts)


def refusal(code: str, facts: Mapping[str, Any], language: str) -> str:
    """Why an action was refused (its code and facts), in `language`, else Italian, else the code and facts."""
    for tongue in dict.fromkeys([catalogue(language).language, DEFAULT_LANGUAGE]):
        entry = catalogue(tongue).refusals.get(code)
        if entry is None:
            continue
        try:
            return _fill(entry, facts, _Formatter(tongue))
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            continue
    return f"{code} ({as_is(code, facts)})" if facts else code


def as_is(kind: str, facts: Mapping[str, Any]) -> str:
    """The facts themselves, for an entry no catalogue can say."""
    if not facts:
        return kind
    return "; ".join(f"{name}: {value}" for name, value in facts.items())


def number(value: int, language: str) -> str:
    """A whole number with its thousands grouped as `language` writes them: 12.345 in Italian, 12,345 in English."""
    return f"{value:,d}".replace(",", catalogue(language).thousands_separator)


def placeholders(template: str) -> set[str]:
    """The names of the facts a template says."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _given(value: object) -> bool:
    """A fact worth saying: present, and not empty or false (0 is a number, and given)."""
    return value is not None and value is not False and value != ""


def _fill(entry: Entry, facts: Mapping[str, Any], formatter: _Formatter) -> str:
    if isinstance(entry, str):
        return formatter.format(entry, **facts)
    if isinstance(entry, list):
        for alternative in entry:
            if all(_given(facts.get(name)) for name in placeholders(alternative)):
                return formatter.format(alternative, **facts)
        raise KeyError("no alternative has its facts")
    sentences = [
        formatter.format(template, **facts)
        for name, template in entry.items()
        if name == "text" or _given(facts.get(name))
    ]
    return " ".join(sentences)


class _Formatter(string.Formatter):
    """Format strings whose spec names a vocabulary (`{urgency:urgency}`), `number`, or `time` (an ISO 8601
    moment, shown on the help desk's clock as [words.time] writes it)."""

    def __init__(self, language: str):
        super().__init__()
        self.language = language

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "number":
            return number(value, self.language)
        if format_spec == "time":
            moment = datetime.fromisoformat(value).astimezone(HELP_DESK_ZONE)
            return moment.strftime(self._word("time", "format"))
        if format_spec:
            return self._word(format_spec, str(value))
        return str(value)

    def _word(self, vocabulary: str, code: str) -> str:
        for tongue in (self.language, DEFAULT_LANGUAGE):
            words = catalogue(tongue).words.get(vocabulary, {})
            if code in words:
                return words[code]
        return code
