"""Which devices are flooding the gateway now: the ones whose messages should queue apart.

The inbox is fair (`FairInbox`), but it can only reorder what the broker has already sent: when one
device publishes faster than the gateway commits, the backlog grows at the broker, in the gateway's
one session, and every other reader's tap waits behind it (issue 6: p99 8 s during a 50,000-message
flood). So a device over `limit_per_s` messages in a second is moved to the gateway's second session
(gateway/lanes.py): its backlog then queues at the broker apart from everybody else's, and the others'
taps keep their sub-second answers. Nothing is dropped either way; only where the device's messages
wait changes. An honest device goes over the limit only when it replays an offline queue, which then
simply drains through the slow lane.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Window:
    started: float  # monotonic start of the current one-second window
    count: int  # messages seen in it
    over_at: float  # when the source last went over the limit


class FloodWatch:
    """Counts messages per source (`site/device`) in one-second windows. `seen` runs on the MQTT
    network threads for every message, so it is a few dictionary operations under a lock; `flooding`
    runs on the worker between batches.

    A source counts as flooding from the moment it goes over the limit until it has stayed under it
    for `hold_s` (so a device does not flap between the lanes at every pause of its flood)."""

    def __init__(self, limit_per_s: int, hold_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit_per_s
        self._hold_s = hold_s
        self._monotonic = monotonic
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def seen(self, source: str) -> bool:
        """One message from `source` ("" for topics that name no device: never moved). True when this
        message took the source over the limit, so the caller can move it at once: every message the
        broker still sends the main session before the move is one the others' taps may wait behind."""
        if not source:
            return False
        now = self._monotonic()
        with self._lock:
            w = self._windows.get(source)
            if w is None:
                w = self._windows[source] = _Window(now, 0, -float("inf"))
            elif now - w.started >= 1.0:
                w.started, w.count = now, 0
            w.count += 1
            if w.count <= self._limit:
                return False
            newly = now - w.over_at >= self._hold_s
            w.over_at = now
            return newly

    def flooding(self) -> frozenset[str]:
        """The sources over the limit within the last `hold_s`; forgets the quiet ones (bounded memory)."""
        now = self._monotonic()
        with self._lock:
            quiet = [s for s, w in self._windows.items() if now - w.started >= self._hold_s]
            for s in quiet:  # not even one message for hold_s: nothing left to remember
                if now - self._windows[s].over_at >= self._hold_s:
                    del self._windows[s]
            return frozenset(s for s, w in self._windows.items() if now - w.over_at < self._hold_s)
