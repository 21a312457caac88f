"""Everything the line says, per language: Italian first, English second.

Each language has one catalogue, `prompts/<lang>.toml`, with its Twilio voice and the
texts by key. Numbers are spoken through `spoken_digits`, never glued into strings.
Values put into a text (a company's name, a technician's) go through `speakable`, so
that whatever is stored, the TwiML that says it stays well-formed XML.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

LANGUAGES = ("it", "en")
DEFAULT_LANGUAGE = "it"

# What XML 1.0 cannot carry (C0 controls, lone surrogates, U+FFFE, U+FFFF), and DEL and
# the C1 controls, which it can but no voice should read.
_UNSPEAKABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_BREAKS = re.compile("[\t\n\r]+")


@dataclass(frozen=True)
class Pause:
    """Silence between spoken parts, in seconds."""

    seconds: int = 1


Speech = list["str | Pause"]


@dataclass(frozen=True)
class Catalogue:
    language: str
    voice: str
    say_language: str  # BCP-47, for Twilio's <Say language=...>
    texts: dict[str, str]

    def text(self, key: str, **values: object) -> str:
        """The text for `key`, falling back to the default language, with placeholders filled."""
        template = self.texts.get(key)
        if template is None:
            template = catalogue(DEFAULT_LANGUAGE).texts[key]
        if not values:
            return template
        return template.format(
            **{
                name: value if isinstance(value, int | float) else speakable(str(value))
                for name, value in values.items()
            }
        )


def speakable(text: str) -> str:
    """`text` fit for <Say>: without the characters XML cannot carry or that are controls; line breaks become spaces."""
    return _UNSPEAKABLE.sub("", _BREAKS.sub(" ", text))


@cache
def catalogue(language: str) -> Catalogue:
    """The catalogue of `language`; an unknown language gets the default one."""
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    data = tomllib.loads(Path(__file__).with_name(f"{language}.toml").read_text(encoding="utf-8"))
    return Catalogue(language, data["voice"]["voice"], data["voice"]["language"], data["text"])


def spoken_digits(number: str, group: int = 3) -> Speech:
    """A number read slowly, digit by digit, in groups with a pause between them."""
    groups = [number[i : i + group] for i in range(0, len(number), group)]
    speech: Speech = []
    for index, chunk in enumerate(groups):
        if index:
            speech.append(Pause(1))
        speech.append(", ".join(chunk) + ".")
    return speech


def spoken_phone(number: str) -> str:
    """A phone number read digit by digit (without the leading +)."""
    return ", ".join(number.lstrip("+"))


def spoken_when(when: datetime, now: datetime, language: str, timezone: ZoneInfo) -> str:
    """A moment said naturally, relative to now: "today at 10:40", "yesterday at 18:05", "on 3 November at 9:00"."""
    text = catalogue(language).text
    local = when.astimezone(timezone)
    days = (local.date() - now.astimezone(timezone).date()).days
    key = {0: "when_today", -1: "when_yesterday", 1: "when_tomorrow"}.get(days, "when_date")
    month = [m.strip() for m in text("months").split(",")][local.month - 1]
    return text(key, time=f"{local.hour}:{local.minute:02d}", day=local.day, month=month)
