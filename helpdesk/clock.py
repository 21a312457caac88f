"""SLA time: the minutes a service level counts, business hours without Italian public holidays, or every minute.

`SlaHours.add(start, minutes)` is the deadline `minutes` of SLA time after `start`;
`SlaHours.elapsed(start, end)` the SLA time between two instants (for statistics). Business
hours are weekly intervals on the local clock of a time zone (Europe/Rome), so a working
day is 9 hours long on the day the clocks change too: each interval is measured between its
opening and closing instants. The holidays are the Italian national ones, computed here
(Easter by the anonymous Gregorian algorithm), so that a deadline never depends on a
package's idea of the calendar.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

# Fixed national holidays (month, day): New Year, Epiphany, Liberation, Labour, Republic,
# Assumption, All Saints, Immaculate Conception, Christmas, St Stephen.
_FIXED_HOLIDAYS = ((1, 1), (1, 6), (4, 25), (5, 1), (6, 2), (8, 15), (11, 1), (12, 8), (12, 25), (12, 26))
_SEARCH_DAYS = 3660  # a deadline further than ten years of open days is a table with no open hours


def easter_sunday(year: int) -> date:
    """Easter Sunday of `year` in the Gregorian calendar (the anonymous, "Meeus/Jones/Butcher", algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)


@cache
def italian_holidays(year: int) -> frozenset[date]:
    """The Italian national public holidays of `year` (a Sunday among them is a Sunday anyway)."""
    fixed = {date(year, month, day) for month, day in _FIXED_HOLIDAYS}
    return frozenset(fixed | {easter_sunday(year) + timedelta(days=1)})  # Easter Monday


@dataclass(frozen=True)
class SlaHours:
    """The hours a service level counts: opening intervals per weekday (0 = Monday) in `timezone`, holidays
    closed; or, with `intervals` None, every minute of every day."""

    intervals: dict[int, list[tuple[time, time]]] | None
    timezone: ZoneInfo

    @property
    def around_the_clock(self) -> bool:
        return self.intervals is None

    def add(self, start: datetime, span: timedelta) -> datetime:
        """The instant `span` of SLA time after `start` (an aware datetime), in UTC."""
        start = _utc(start)
        if self.intervals is None or span <= timedelta(0):
            return start + span
        remaining = span
        for opening, closing in self._open_periods(start):
            begin = max(opening, start)
            if begin >= closing:
                continue
            if remaining <= closing - begin:
                return begin + remaining
            remaining -= closing - begin
        raise ValueError("the SLA hours have no open time: a deadline would never come")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """The SLA time between two instants; negative when `end` comes first."""
        start, end = _utc(start), _utc(end)
        if end < start:
            return -self.elapsed(end, start)
        if self.intervals is None:
            return end - start
        counted = timedelta(0)
        for opening, closing in self._open_periods(start):
            if opening >= end:
                break
            counted += max(timedelta(0), min(closing, end) - max(opening, start))
        return counted

    def _open_periods(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open periods (opening, closing) in UTC, in order, from the local day of `start` on."""
        assert self.intervals is not None
        day = start.astimezone(self.timezone).date()
        for _ in range(_SEARCH_DAYS):
            if day not in italian_holidays(day.year):
                for first, last in sorted(self.intervals.get(day.weekday(), [])):
                    # Each end on the local clock, then in UTC: on a day the clocks change, an
                    # interval that spans the change is an hour shorter or longer, as it is lived.
                    yield (
                        _utc(datetime.combine(day, first, self.timezone)),
                        _utc(datetime.combine(day, last, self.timezone)),
                    )
            day += timedelta(days=1)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: SLA time is counted between aware instants")
    return moment.astimezone(UTC)
