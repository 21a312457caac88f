"""The console's words in Italian and English, and dates in Europe/Rome.

The words are in `words/<area>_<language>.toml` (one file per area and language, the keys
of an area the same in both); `t("key", name=...)` in views and templates says a key in
the signed-in user's language, else Italian.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from flask_login import current_user

LANGUAGES = ("it", "en")
HERE = Path(__file__).parent


@cache
def words(language: str) -> dict[str, str]:
    """Every area's words in `language`; a key defined by two areas is a mistake."""
    merged: dict[str, str] = {}
    for path in sorted((HERE / "words").glob(f"*_{language}.toml")):
        area = tomllib.loads(path.read_text(encoding="utf-8"))
        clash = merged.keys() & area.keys()
        if clash:
            raise ValueError(f"{path.name} defines again: {', '.join(sorted(clash))}")
        merged.update(area)
    return merged


def language() -> str:
    """The signed-in user's language, else Italian."""
    chosen = getattr(current_user, "language", None) if current_user else None
    return chosen if chosen in LANGUAGES else "it"


def t(key: str, **values: Any) -> str:
    """The words for `key` in the user's language, with `values` put in."""
    text = words(language()).get(key) or words("it").get(key) or key
    return text.format(**values) if values else text


def local(moment: datetime | None, with_date: bool = True) -> str:
    """A time as the help desk reads it: in its time zone, day first."""
    if moment is None:
        return "—"
    zone = ZoneInfo(current_app.config["SETTINGS"].business_timezone)
    return moment.astimezone(zone).strftime("%d/%m/%Y %H:%M" if with_date else "%H:%M")


def register(app: Flask) -> None:
    app.jinja_env.globals.update(t=t, local=local, language=language)
