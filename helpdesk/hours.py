"""Business hours of the help desk: weekly opening times in Europe/Rome, Italian public holidays closed
unless the help desk answers on them too."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

import holidays

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_PART = re.compile(r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$")


@dataclass(frozen=True)
class BusinessHours:
    """Opening intervals per weekday (0 = Monday), e.g. from "mon-fri 09:00-13:00, mon-fri 14:00-18:00"."""

    intervals: dict[int, list[tuple[time, time]]]
    timezone: ZoneInfo
    closed_on_holidays: bool = True

    @classmethod
    def parse(cls, spec: str, timezone: str = "Europe/Rome", *, closed_on_holidays: bool = True) -> BusinessHours:
        """`24:00` ends an interval at midnight: "mon-sun 00:00-24:00" is every minute of the week."""
        intervals: dict[int, list[tuple[time, time]]] = {}
        for part in filter(None, (p.strip().lower() for p in spec.split(","))):
            match = _PART.match(part)
            if not match:
                raise ValueError(f"business hours {part!r}: expected like 'mon-fri 09:00-18:00'")
            first, _, last = match["days"].partition("-")
            if first not in _DAYS or (last and last not in _DAYS):
                raise ValueError(f"business hours {part!r}: days are mon, tue, wed, thu, fri, sat, sun")
            start, end = _time_of_day(match["start"]), _time_of_day(match["end"])
            if start >= end:
                raise ValueError(f"business hours {part!r}: the end must come after the start")
            for day in range(_DAYS.index(first), _DAYS.index(last or first) + 1):
                intervals.setdefault(day, []).append((start, end))
        return cls(intervals, ZoneInfo(timezone), closed_on_holidays)

    def is_open(self, at: datetime) -> bool:
        """True when the help desk answers the phone at `at` (an aware datetime)."""
        local = at.astimezone(self.timezone)
        if self.closed_on_holidays and local.date() in holidays.country_holidays("IT", years=local.year):
            return False
        return any(start <= local.time() < end for start, end in self.intervals.get(local.weekday(), []))


def _time_of_day(text: str) -> time:
    """`09:00` as a time; `24:00`, the end of the day, as its last instant."""
    return time.max if text == "24:00" else time.fromisoformat(text.zfill(5))
