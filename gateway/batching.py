"""Collecting received messages into small batches bounded in size and in waiting time."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def collect(
    source: queue.Queue[T],
    max_size: int,
    max_wait_s: float,
    idle_poll_s: float = 0.2,
    max_gap_s: float = 0.005,
    monotonic: Callable[[], float] = time.monotonic,
) -> list[T]:
    """Wait up to `idle_poll_s` for a first item, then take more until the batch is full,
    `max_wait_s` has passed since the first, or the stream pauses for `max_gap_s` (so a lone tap
    at a quiet hour is answered at once, not after the whole wait); an idle gateway gets [] back
    so it can check whether to stop. The waits on the queue are real time (they wait for the
    network); `monotonic` is the clock the batch's age is measured with."""
    try:
        batch = [source.get(timeout=idle_poll_s)]
    except queue.Empty:
        return []
    deadline = monotonic() + max_wait_s
    while len(batch) < max_size:
        try:
            batch.append(source.get_nowait())
            continue
        except queue.Empty:
            pass
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        try:
            batch.append(source.get(timeout=min(remaining, max_gap_s)))
        except queue.Empty:
            break
    return batch
