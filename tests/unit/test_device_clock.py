"""Which time a device message counts at: its `ts` inside the clock window around the receipt
time, the receipt time outside it, flagged as clock skew (issue 6 item 4; docs/mqtt-contract.md,
"Device clocks"). Pure: the receipt time is given, no clock is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.config import Settings
from core.device_clock import ClockWindow, DeviceTime, judge_device_time, observed_at

RECEIVED = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
WINDOW = ClockWindow(past=timedelta(hours=24), future=timedelta(minutes=5))


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(0), DeviceTime(RECEIVED)),
        (timedelta(seconds=-2), DeviceTime(RECEIVED - timedelta(seconds=2))),  # network and batching
        (timedelta(hours=-23, minutes=-59), DeviceTime(RECEIVED - timedelta(hours=23, minutes=59))),  # offline queue
        (-timedelta(hours=24), DeviceTime(RECEIVED - timedelta(hours=24))),  # the window's edge is inside
        (timedelta(minutes=5), DeviceTime(RECEIVED + timedelta(minutes=5))),
        (timedelta(minutes=5, seconds=1), DeviceTime(RECEIVED, 301)),  # ahead: the clock is wrong
        (-timedelta(hours=24, seconds=1), DeviceTime(RECEIVED, -86401)),
        (timedelta(days=365), DeviceTime(RECEIVED, 31536000)),  # a year ahead (was accepted silently)
        (-timedelta(days=3653), DeviceTime(RECEIVED, -315619200)),  # ten years back (likewise)
    ],
)
def test_device_time_is_believed_inside_the_window_else_receipt_time_with_the_skew(
    offset: timedelta, expected: DeviceTime
) -> None:
    assert judge_device_time(RECEIVED + offset, RECEIVED, WINDOW) == expected


def test_the_past_window_is_longer_than_the_future_one_by_default() -> None:
    """A reader back from being offline sends old taps late: those are not clock errors; a tap
    from the future is."""
    window = ClockWindow()
    assert window.past >= timedelta(hours=12) > timedelta(minutes=10) >= window.future
    assert not judge_device_time(RECEIVED - timedelta(hours=10), RECEIVED, window).skewed
    assert judge_device_time(RECEIVED + timedelta(minutes=30), RECEIVED, window).skewed


def test_a_skew_of_a_fraction_of_a_second_beyond_the_window_is_still_flagged() -> None:
    got = judge_device_time(RECEIVED + timedelta(minutes=5, microseconds=1), RECEIVED, WINDOW)
    assert got.skewed and got.at == RECEIVED


def test_the_time_used_is_rebuilt_from_what_is_stored() -> None:
    device_ts = RECEIVED - timedelta(days=2)
    judged = judge_device_time(device_ts, RECEIVED, WINDOW)
    assert observed_at(device_ts, RECEIVED, judged.skew_s) == judged.at == RECEIVED
    assert observed_at(RECEIVED - timedelta(minutes=1), RECEIVED, None) == RECEIVED - timedelta(minutes=1)


def test_the_window_is_configured_in_settings() -> None:
    settings = Settings(_env_file=None, clock_past_window_s=3600, clock_future_window_s=30)  # type: ignore[call-arg]
    assert settings.clock_window == ClockWindow(timedelta(hours=1), timedelta(seconds=30))
    assert Settings(_env_file=None).clock_window == ClockWindow()  # type: ignore[call-arg]


def test_a_window_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one second"):
        ClockWindow(past=timedelta(0))
