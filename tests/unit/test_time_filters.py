"""The API's one time-parameter type (server/api/time_filters.py), table-driven, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from server.api.time_filters import parse_time_bound, resolve_bound

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T08:00:00+08:00", datetime(2026, 11, 28, 0, 0, tzinfo=UTC)),
        ("2026-11-28T00:00:00Z", datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-11-28t00:00:00z", datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-11-28 00:00:00-05:00", datetime(2026, 11, 28, 5, tzinfo=UTC)),
        ("2026-11-28T00:00:00.123456789Z", datetime(2026, 11, 28, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2026-12-31T23:59:60Z", datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),  # leap second
        ("0001-01-01T00:00:00+14:00", datetime.min.replace(tzinfo=UTC)),  # before the calendar: its start
        ("9999-12-31T23:00:00-12:00", datetime.max.replace(tzinfo=UTC)),
        ("2026-11-28", date(2026, 11, 28)),
    ],
)
def test_accepted_forms(text: str, expected: datetime | date) -> None:
    assert parse_time_bound(text) == expected


@pytest.mark.parametrize(
    "text",
    ["0.5", "1764288311", "1764288311250", "-1", "2026-11-28T08:00:00", "2026-11-28T08:00", "2026-11-28T25:00:00Z",
     "2026-02-30", "2026-11-28T08:00:00+24:00", "28.11.2026", "", "now"],
)  # fmt: skip
def test_refused_forms_name_the_accepted_ones(text: str) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339 time with an offset .* or a date"):
        parse_time_bound(text)


def test_a_naive_datetime_is_refused_even_when_passed_parsed() -> None:
    with pytest.raises(ValueError, match="without an offset"):
        parse_time_bound(datetime(2026, 11, 28))
    aware = datetime(2026, 11, 28, tzinfo=timezone(timedelta(hours=8)))
    assert parse_time_bound(aware) is aware


@pytest.mark.parametrize(
    ("bound", "zone", "end_of_day", "expected"),
    [
        (date(2026, 11, 28), SHANGHAI, False, datetime(2026, 11, 27, 16, tzinfo=UTC)),
        (date(2026, 11, 28), SHANGHAI, True, datetime(2026, 11, 28, 16, tzinfo=UTC)),
        (date(2026, 11, 28), UTC, True, datetime(2026, 11, 29, tzinfo=UTC)),
        (date(1, 1, 1), SHANGHAI, False, datetime.min.replace(tzinfo=UTC)),
        (date.max, SHANGHAI, True, datetime.max.replace(tzinfo=UTC)),
        (datetime(2026, 11, 28, 3, tzinfo=UTC), SHANGHAI, True, datetime(2026, 11, 28, 3, tzinfo=UTC)),
    ],
)
def test_a_date_is_the_whole_day_in_the_zone(bound: date, zone: ZoneInfo, end_of_day: bool, expected: datetime) -> None:
    """since=D&until=D is day D, read in the site's zone; an instant stays the instant it names."""
    assert resolve_bound(bound, zone, end_of_day=end_of_day) == expected
