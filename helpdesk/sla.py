"""The service levels: response and restore deadlines by level and urgency, and what each level provides.

One table, `sla.toml` beside this file (or the file SLA_TABLE names), checked when it is
read: every level has a deadline for every urgency, and counts its minutes in business hours
or around the clock (helpdesk.clock); the business hours are the table's own, the contract's
(not BUSINESS_HOURS, the hours the line rings the on-call technician).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from helpdesk.clock import SlaHours
from helpdesk.hours import BusinessHours
from storage.tickets import URGENCIES

DEFAULT_TABLE = Path(__file__).with_name("sla.toml")
LEVELS = ("base", "business", "premium")
UNREGISTERED_LEVEL = "base"  # a caller not matched to a customer is held to the lowest level
BUSINESS, AROUND_THE_CLOCK = "business_hours", "around_the_clock"  # what a level's minutes count


class SlaTableError(ValueError):
    """The SLA table is incomplete or malformed."""


@dataclass(frozen=True)
class SlaTable:
    response: dict[str, dict[str, timedelta]]
    restore: dict[str, dict[str, timedelta]]
    provides: dict[str, frozenset[str]]
    hours: dict[str, SlaHours]  # the hours each level counts

    def response_due(self, opened_at: datetime, level: str | None, urgency: str) -> datetime:
        """When a person must have answered a ticket opened at `opened_at`: its minutes in the level's hours."""
        return self.hours_of(level).add(opened_at, self.response[level or UNREGISTERED_LEVEL][urgency])

    def restore_due(self, opened_at: datetime, level: str | None, urgency: str) -> datetime:
        """When service must be back for a ticket opened at `opened_at`: its minutes in the level's hours."""
        return self.hours_of(level).add(opened_at, self.restore[level or UNREGISTERED_LEVEL][urgency])

    def hours_of(self, level: str | None) -> SlaHours:
        """The hours the level counts (an unknown level: the lowest's)."""
        return self.hours.get(level or UNREGISTERED_LEVEL, self.hours[UNREGISTERED_LEVEL])

    def elapsed(self, level: str | None, start: datetime, end: datetime) -> timedelta:
        """The level's SLA time between two instants (for statistics)."""
        return self.hours_of(level).elapsed(start, end)

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
    return SlaTable(deadlines["response_minutes"], deadlines["restore_minutes"], provides, _hours(data))


def _hours(data: dict[str, object]) -> dict[str, SlaHours]:
    """[counts] (business_hours or around_the_clock, per level) with [business_hours] (week, timezone)."""
    spec = data.get("business_hours", {})
    counts = data.get("counts", {})
    if not isinstance(spec, dict) or not isinstance(counts, dict):
        raise SlaTableError("[business_hours] and [counts] are tables")
    try:
        zone = ZoneInfo(str(spec.get("timezone", "Europe/Rome")))
    except (ZoneInfoNotFoundError, ValueError):
        raise SlaTableError(f"[business_hours] timezone: unknown time zone {spec.get('timezone')!r}") from None
    try:
        week = BusinessHours.parse(str(spec.get("week", "")), str(zone)).intervals
    except ValueError as error:
        raise SlaTableError(f"[business_hours] week: {error}") from None
    hours: dict[str, SlaHours] = {}
    for level in LEVELS:
        kind = counts.get(level)
        if kind not in (BUSINESS, AROUND_THE_CLOCK):
            raise SlaTableError(f"[counts] {level}: {BUSINESS} or {AROUND_THE_CLOCK}")
        if kind == BUSINESS and not week:
            raise SlaTableError(f"[counts] {level} counts business hours, but [business_hours] week has none")
        hours[level] = SlaHours(week if kind == BUSINESS else None, zone)
    return hours


@cache
def load(path: Path = DEFAULT_TABLE) -> SlaTable:
    """The table in the file at `path` (read once per process)."""
    return parse(Path(path).read_text(encoding="utf-8"))
