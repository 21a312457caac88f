"""The service levels: response and restore deadlines by level and urgency, and what each level provides.

One table, `sla.toml` beside this file (or the file SLA_TABLE names), checked when it is
read: every level has a deadline for every urgency.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from storage.tickets import URGENCIES

DEFAULT_TABLE = Path(__file__).with_name("sla.toml")
LEVELS = ("base", "business", "premium")
UNREGISTERED_LEVEL = "base"  # a caller not matched to a customer is held to the lowest level


class SlaTableError(ValueError):
    """The SLA table is incomplete or malformed."""


@dataclass(frozen=True)
class SlaTable:
    response: dict[str, dict[str, timedelta]]
    restore: dict[str, dict[str, timedelta]]
    provides: dict[str, frozenset[str]]

    def response_due(self, opened_at: datetime, level: str | None, urgency: str) -> datetime:
        """When a person must have answered a ticket opened at `opened_at`."""
        return opened_at + self.response[level or UNREGISTERED_LEVEL][urgency]

    def restore_due(self, opened_at: datetime, level: str | None, urgency: str) -> datetime:
        """When service must be back for a ticket opened at `opened_at`."""
        return opened_at + self.restore[level or UNREGISTERED_LEVEL][urgency]

    def includes(self, level: str | None, provision: str) -> bool:
        """Whether the level provides `provision` (courtesy_device, redundant_system)."""
        return provision in self.provides.get(level or UNREGISTERED_LEVEL, frozenset())


def parse(text: str) -> SlaTable:
    """The table from TOML text; SlaTableError names what is missing."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SlaTableError(f"not TOML: {error}") from None
    deadlines: dict[str, dict[str, dict[str, timedelta]]] = {}
    for section in ("response_minutes", "restore_minutes"):
        table = data.get(section, {})
        deadlines[section] = {}
        for level in LEVELS:
            row = table.get(level, {})
            missing = [urgency for urgency in URGENCIES if not isinstance(row.get(urgency), int) or row[urgency] <= 0]
            if missing:
                raise SlaTableError(f"[{section}] {level}: no positive whole minutes for {', '.join(missing)}")
            deadlines[section][level] = {urgency: timedelta(minutes=row[urgency]) for urgency in URGENCIES}
    provides = {level: frozenset(data.get("provides", {}).get(level, [])) for level in LEVELS}
    return SlaTable(deadlines["response_minutes"], deadlines["restore_minutes"], provides)


@cache
def load(path: Path = DEFAULT_TABLE) -> SlaTable:
    """The table in the file at `path` (read once per process)."""
    return parse(Path(path).read_text(encoding="utf-8"))
