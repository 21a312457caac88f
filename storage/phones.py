"""Phone numbers in E.164, read the way Italian callers and Twilio write them."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

DEFAULT_REGION = "IT"

# What Twilio sends in `From` when the caller withholds the number.
_WITHHELD = {"", "anonymous", "restricted", "unknown", "private", "unavailable", "blocked"}
# Twilio's placeholder numbers for a withheld caller ID.
_PLACEHOLDERS = {"+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"}


@lru_cache(maxsize=4096)  # the same callers call again; parsing is the slow part of a first webhook
def to_e164(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    """The number in E.164, or None when it is not a valid phone number.

    `0392847438`, `+390392847438` and `0039 039 2847438` all give `+390392847438`.
    """
    if not raw:
        return None
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_withheld(raw: str | None) -> bool:
    """True when Twilio tells us the caller's number is not available."""
    text = (raw or "").strip()
    return text.lower() in _WITHHELD or text in _PLACEHOLDERS


def masked(number: str | None) -> str:
    """A number fit for logs: only its last three digits."""
    if not number:
        return "-"
    return "*" * max(len(number) - 3, 0) + number[-3:]
