"""Time, passed in rather than read from the machine, so every time rule runs in simulated time in tests.

Production uses `SystemClock`; unit and component tests a `FakeClock` they advance by hand; tests
that run the product in other processes a `ScaledClock`, whose simulated hours pass in real seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall time, timezone-aware UTC: what deadlines, retention and token expiry compare with."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go backwards: what intervals (batching, reload ages) are measured in."""
        ...

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait `seconds` of this clock's time, or until `stop` is set; True when stopped."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(max(seconds, 0.0))


class FakeClock:
    """Time moves only when the test moves it; `wait` blocks until it has moved far enough."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._origin = self._now
        self._moved = threading.Condition()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return (self._now - self._origin).total_seconds()

    def advance(self, seconds: float | timedelta) -> datetime:
        step = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if step < timedelta(0):
            raise ValueError("a clock does not go backwards")
        with self._moved:
            self._now += step
            self._moved.notify_all()
        return self._now

    def set(self, when: datetime) -> datetime:
        return self.advance(when - self._now)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        target = self._now + timedelta(seconds=max(seconds, 0.0))
        with self._moved:
            while self._now < target and not stop.is_set():
                self._moved.wait(0.05)  # re-checks `stop`, which has no condition of its own
        return stop.is_set()


class ScaledClock:
    """Simulated time that runs `speed` times faster than real time from `origin` on: for tests
    whose product runs in other processes, where a fake clock cannot be advanced by hand."""

    def __init__(self, origin: datetime, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._origin = origin
        self._speed = speed
        self._started = time.monotonic()

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=self.monotonic())

    def monotonic(self) -> float:
        return (time.monotonic() - self._started) * self._speed

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(max(seconds, 0.0) / self._speed)
