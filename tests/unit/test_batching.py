from __future__ import annotations

import queue
import threading
import time

from gateway.batching import collect


def test_batch_is_bounded_by_size() -> None:
    q: queue.Queue[int] = queue.Queue()
    for i in range(12):
        q.put(i)
    assert collect(q, max_size=5, max_wait_s=1.0) == [0, 1, 2, 3, 4]
    assert q.qsize() == 7


def test_a_lone_message_is_not_held_for_the_whole_wait() -> None:
    q: queue.Queue[int] = queue.Queue()
    q.put(1)
    started = time.monotonic()
    assert collect(q, max_size=100, max_wait_s=5.0, max_gap_s=0.01) == [1]
    assert time.monotonic() - started < 1.0


def test_a_steady_stream_is_collected_until_max_wait() -> None:
    q: queue.Queue[int] = queue.Queue()
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set() and i < 10_000:
            q.put(i)
            i += 1
            time.sleep(0.001)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        batch = collect(q, max_size=10_000, max_wait_s=0.2, max_gap_s=0.05)
    finally:
        stop.set()
        feeder.join()
    assert 20 < len(batch) < 10_000


def test_idle_queue_gives_empty_batch() -> None:
    assert collect(queue.Queue(), max_size=10, max_wait_s=0.01, idle_poll_s=0.01) == []
