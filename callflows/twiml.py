"""TwiML written as text: the few verbs the line answers with, byte for byte as twilio's builder writes them.

twilio's `VoiceResponse` builds an ElementTree and serialises it, which costs more than
the rest of a menu step's answer; this writes the same document directly
(tests/test_twiml.py compares the two). Attributes are given in Python's snake_case
and written in TwiML's camelCase, sorted, as twilio writes them.
"""

from __future__ import annotations

from functools import cache, lru_cache

_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#09;"}
)


@cache
def camel(name: str) -> str:
    """TwiML's name for a keyword argument: `finish_on_key` is `finishOnKey`."""
    first, *rest = name.split("_")
    return first + "".join(word.title() for word in rest)


def _element(name: str, attributes: dict[str, object], content: str = "") -> str:
    # Keyed by the values as written: True and 1 are equal keys to a cache, "true" and "1" are not.
    attrs = _attributes(tuple((arg, _value(value)) for arg, value in attributes.items() if value is not None))
    return f"<{name}{attrs}>{content}</{name}>" if content else f"<{name}{attrs} />"


@lru_cache(maxsize=512)
def _attributes(items: tuple[tuple[str, str], ...]) -> str:
    """The attributes as written: a menu repeats the same few (a Say's voice and language), so each is written once."""
    return "".join(
        f' {key}="{value.translate(_ATTRIBUTE_ESCAPES)}"' for key, value in sorted((camel(arg), v) for arg, v in items)
    )


def _value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class Verbs:
    """A sequence of TwiML verbs: a Response, or a Gather's nested verbs."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def say(self, text: str, **attributes: object) -> None:
        self.parts.append(_element("Say", attributes, text.translate(_TEXT_ESCAPES)))

    def pause(self, **attributes: object) -> None:
        self.parts.append(_element("Pause", attributes))

    def redirect(self, url: str, **attributes: object) -> None:
        self.parts.append(_element("Redirect", attributes, url.translate(_TEXT_ESCAPES)))

    def record(self, **attributes: object) -> None:
        self.parts.append(_element("Record", attributes))

    def hangup(self) -> None:
        self.parts.append("<Hangup />")

    def gather(self, nested: Verbs, **attributes: object) -> None:
        self.parts.append(_element("Gather", attributes, "".join(nested.parts)))

    def dial(self, number: str, **attributes: object) -> None:
        self.parts.append(_element("Dial", attributes, _element("Number", {}, number.translate(_TEXT_ESCAPES))))


class Response(Verbs):
    """A whole TwiML answer; `str()` gives the document."""

    def __str__(self) -> str:
        return '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(self.parts) + "</Response>"
