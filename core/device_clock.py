"""Which time to believe for a device message: the device's `ts` or the server's receipt time.

A device's clock can be wrong (never set, drifted, set by hand), and a reader with an offline
queue sends old taps late. The server cannot tell the two apart from one message, so it trusts
`ts` inside a window around the receipt time — long into the past, for offline queues; short
into the future, where nothing legitimate lies — and outside it keeps both times, flags the
message as clock skew and uses the receipt time (docs/mqtt-contract.md, "Device clocks").

Pure: the receipt time is passed in (the gateway's `Received.received_at`, from its clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: An offline reader's queue (a shift, a night without network) is still trusted within a day.
DEFAULT_PAST = timedelta(hours=24)
#: Network and batching delays are seconds; a clock minutes ahead is wrong, not early.
DEFAULT_FUTURE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class ClockWindow:
    """How far a device's `ts` may lie from the receipt time and still be used."""

    past: timedelta = DEFAULT_PAST
    future: timedelta = DEFAULT_FUTURE

    def __post_init__(self) -> None:
        if self.past < timedelta(seconds=1) or self.future < timedelta(seconds=1):
            raise ValueError("the clock window needs at least one second on each side")


@dataclass(frozen=True, slots=True)
class DeviceTime:
    """The time rules and filters use (`at`) and, when the device's clock was not believed, by how
    many seconds its `ts` was off the receipt time (negative: behind)."""

    at: datetime
    skew_s: int | None = None

    @property
    def skewed(self) -> bool:
        return self.skew_s is not None


def judge_device_time(device_ts: datetime, received_at: datetime, window: ClockWindow) -> DeviceTime:
    """The device's `ts` within the window; otherwise the receipt time, flagged with the skew."""
    offset = device_ts - received_at
    if -window.past <= offset <= window.future:
        return DeviceTime(device_ts)
    seconds = int(offset.total_seconds())  # towards zero; never 0, since the window is ≥ 1 s each side
    return DeviceTime(received_at, seconds)


def observed_at(device_ts: datetime, received_at: datetime, skew_s: int | None) -> datetime:
    """The time that was used for a stored message, from what is stored about it."""
    return received_at if skew_s is not None else device_ts
