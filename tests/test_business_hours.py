"""When the help desk answers the phone: weekly hours in Rome, Italian public holidays closed."""

from datetime import UTC, datetime

import pytest

from helpdesk.hours import BusinessHours

HOURS = BusinessHours.parse("mon-fri 09:00-13:00, mon-fri 14:00-18:00")


def rome(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HOURS.timezone)


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        ("2026-11-25 10:40", True),  # a Wednesday morning
        ("2026-11-25 13:30", False),  # lunch break
        ("2026-11-25 18:00", False),  # closing time
        ("2026-11-28 10:00", False),  # Saturday
        ("2026-12-08 10:00", False),  # Immacolata, a public holiday on a Tuesday
        ("2026-12-25 10:00", False),  # Christmas
        ("2027-03-29 10:00", False),  # Easter Monday
    ],
)
def test_open_only_in_business_hours_on_working_days(moment, open_):
    assert HOURS.is_open(rome(moment)) is open_


def test_hours_are_in_rome_time_whatever_the_server_clock():
    # 08:30 UTC in November is 09:30 in Rome
    assert HOURS.is_open(datetime(2026, 11, 25, 8, 30, tzinfo=UTC))


@pytest.mark.parametrize("spec", ["mon-fri 9-18", "someday 09:00-18:00", "mon 18:00-09:00"])
def test_a_malformed_schedule_is_refused_with_an_example(spec):
    with pytest.raises(ValueError, match="mon|days|end"):
        BusinessHours.parse(spec)


def test_24_00_ends_the_day_so_a_line_can_answer_every_minute():
    always = BusinessHours.parse("mon-sun 00:00-24:00")
    assert always.is_open(rome("2026-11-25 23:59:30"))  # the last minute of a Wednesday
    assert always.is_open(rome("2026-11-26 00:00"))


def test_a_help_desk_open_on_holidays_keeps_its_weekly_hours_on_them():
    closed = BusinessHours.parse("mon-sun 00:00-24:00")
    open_ = BusinessHours.parse("mon-sun 00:00-24:00", closed_on_holidays=False)
    immacolata = rome("2026-12-08 10:00")
    assert not closed.is_open(immacolata)
    assert open_.is_open(immacolata)
    assert not BusinessHours.parse("mon-fri 09:00-18:00", closed_on_holidays=False).is_open(rome("2026-12-08 20:00"))
