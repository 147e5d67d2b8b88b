from __future__ import annotations

import queue

from gateway.batching import collect


def test_batch_is_bounded_by_size() -> None:
    q: queue.Queue[int] = queue.Queue()
    for i in range(12):
        q.put(i)
    assert collect(q, max_size=5, max_wait_s=1.0) == [0, 1, 2, 3, 4]
    assert q.qsize() == 7


def test_batch_stops_waiting_after_max_wait() -> None:
    q: queue.Queue[int] = queue.Queue()
    q.put(1)
    assert collect(q, max_size=100, max_wait_s=0.01) == [1]


def test_idle_queue_gives_empty_batch() -> None:
    assert collect(queue.Queue(), max_size=10, max_wait_s=0.01, idle_poll_s=0.01) == []
