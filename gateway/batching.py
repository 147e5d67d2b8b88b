"""Collecting received messages into small batches bounded in size and in waiting time, fairly
across the devices that sent them."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class FairInbox(Generic[T]):
    """The worker's inbox: one FIFO per source (a device), served round-robin, so a device
    flooding the gateway delays only itself: a tap from another reader waits behind at most one
    message of each busy device, not behind the whole flood (issue 6, item 3).

    `put` runs on the network thread and never blocks. What bounds memory is the broker's
    in-flight window for QoS 1 (the gateway asks for Receive Maximum, gateway/mqtt_link.py): it
    sends no more unacked messages than that. QoS 0 has no window, so past `max_items` a message
    that `sheddable` allows is refused (counted by the caller) instead of queued."""

    def __init__(
        self,
        key: Callable[[T], Hashable],
        max_items: int = 50_000,
        sheddable: Callable[[T], bool] = lambda _item: False,
    ) -> None:
        self._key = key
        self._max_items = max_items
        self._sheddable = sheddable
        self._queues: dict[Hashable, deque[T]] = {}
        self._turns: deque[Hashable] = deque()  # sources with something queued, next to serve first
        self._size = 0
        self._ready = threading.Condition()

    def put(self, item: T, source: Hashable | None = None) -> bool:
        """Queue `item` behind its source's earlier ones (`source`: its key, when the caller has it
        already); False if it was refused (shed)."""
        k = self._key(item) if source is None else source
        with self._ready:
            if self._size >= self._max_items and self._sheddable(item):
                return False
            q = self._queues.get(k)
            if q is None:
                q = self._queues[k] = deque()
                self._turns.append(k)
            q.append(item)
            self._size += 1
            self._ready.notify()
        return True

    def qsize(self) -> int:
        return self._size

    def empty(self) -> bool:
        return self._size == 0

    def _pop(self, taken: dict[Hashable, int], cap: int, caps: Mapping[Hashable, int]) -> T | None:
        """The oldest item of the next source that has had fewer than its cap (`caps`, else `cap`;
        0: no cap) items in this batch; that source goes to the back of the turns. None if every
        waiting source is at its cap. Lock held."""
        for _ in range(len(self._turns)):
            k = self._turns[0]
            limit = caps.get(k, cap)
            if limit and taken.get(k, 0) >= limit:
                self._turns.rotate(-1)
                continue
            q = self._queues[k]
            item = q.popleft()
            self._size -= 1
            taken[k] = taken.get(k, 0) + 1
            if q:
                self._turns.rotate(-1)
            else:
                self._turns.popleft()
                del self._queues[k]
            return item
        return None

    def collect(
        self,
        max_size: int,
        max_wait_s: float,
        idle_poll_s: float = 0.2,
        max_gap_s: float = 0.005,
        monotonic: Callable[[], float] = time.monotonic,
        per_source: int = 0,
        caps: Mapping[Hashable, int] | None = None,
    ) -> list[T]:
        """Wait up to `idle_poll_s` for a first item, then take more until the batch is full,
        `max_wait_s` has passed since the first, or the stream pauses for `max_gap_s` (so a lone
        tap at a quiet hour is answered at once, not after the whole wait); an idle gateway gets
        [] back so it can check whether to stop. The waits are real time (they wait for the
        network); `monotonic` measures the batch's age.

        Messages are taken round-robin across sources, at most `per_source` of one source (0: no
        cap; `caps` overrides it for some sources). The cap bounds how long a flooding source's
        share of a batch takes to commit and answer, which is what the other sources' messages in
        that batch wait for; a batch closes at once when every waiting source has reached it."""
        taken: dict[Hashable, int] = {}
        with self._ready:
            if not self._size and idle_poll_s > 0:
                self._ready.wait(idle_poll_s)
            first = self._pop(taken, per_source, caps or {}) if self._size else None
            if first is None:
                return []
            batch = [first]
        deadline = monotonic() + max_wait_s
        while len(batch) < max_size:
            with self._ready:
                while self._size and len(batch) < max_size:
                    item = self._pop(taken, per_source, caps or {})
                    if item is None:
                        return batch  # only capped sources wait: close the batch now
                    batch.append(item)
                if len(batch) >= max_size:
                    break
                remaining = deadline - monotonic()
                if remaining <= 0 or max_gap_s <= 0:
                    break
                self._ready.wait(min(remaining, max_gap_s))
                if not self._size:
                    break
        return batch
