"""Urgency: the caller's triage combined with the SLA of the customer known by caller ID, raised by clear words."""

from __future__ import annotations

import re
import unicodedata

from storage.tickets import URGENCIES

# severity pressed by the caller: 1 everything is stopped, 2 it partly works, 3 a request
_BY_SEVERITY_AND_SLA = {
    1: {"base": "high", "business": "critical", "premium": "critical"},
    2: {"base": "normal", "business": "high", "premium": "high"},
    3: {"base": "low", "business": "low", "premium": "normal"},
}
_UNTRIAGED = {"base": "normal", "business": "normal", "premium": "high"}

# Words in a transcript that raise the urgency (never lower it), matched without accents.
_RAISING_WORDS: dict[str, tuple[str, ...]] = {
    "critical": (
        "server down",
        "server e giu",
        "server non risponde",
        "server fermo",
        "non funziona niente",
        "non funziona nulla",
        "non va niente",
        "e tutto fermo",
        "tutto bloccato",
        "siamo fermi",
        "ransomware",
        "virus",
        "attacco informatico",
        "hacker",
        "dati criptati",
        "nothing works",
        "everything is down",
        "everything is stopped",
        "production is down",
        "system is down",
        "data breach",
        "we are hacked",
        "encrypted our files",
    ),
    "high": (
        "non funziona",
        "bloccato",
        "non riusciamo a lavorare",
        "non riesco a lavorare",
        "urgente",
        "not working",
        "does not work",
        "doesn't work",
        "is down",
        "urgent",
        "cannot work",
        "can't work",
    ),
}


def provisional_urgency(severity: int | None, sla: str | None) -> str:
    """The urgency a new ticket opens with."""
    level = sla if sla in ("base", "business", "premium") else "base"
    if severity in _BY_SEVERITY_AND_SLA:
        return _BY_SEVERITY_AND_SLA[severity][level]
    return _UNTRIAGED[level]


def verified_sla(contact_id: int | None, customer_sla: str | None) -> str | None:
    """The SLA that may raise a new ticket's urgency and sets its deadlines: its customer's, when the
    caller ID identified the contact (`contact_id`), else none.

    A customer code typed on the keypad is a claim, and claims buy neither urgency nor deadlines.
    """
    return customer_sla if contact_id is not None else None


def raised_by_transcript(urgency: str, transcript: str) -> tuple[str, str] | None:
    """(higher urgency, the words that justify it), or None when the transcript changes nothing."""
    text = _plain(transcript)
    for level in ("critical", "high"):
        if URGENCIES.index(level) <= URGENCIES.index(urgency):
            continue
        for words in _RAISING_WORDS[level]:
            if re.search(rf"\b{re.escape(words)}\b", text):
                return level, words
    return None


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^\w']+", " ", stripped)
