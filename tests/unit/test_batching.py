from __future__ import annotations

import threading
import time

from gateway.batching import FairInbox


def _one_source() -> FairInbox[int]:
    return FairInbox(key=lambda _: 0)


def test_batch_is_bounded_by_size() -> None:
    q = _one_source()
    for i in range(12):
        q.put(i)
    assert q.collect(max_size=5, max_wait_s=1.0) == [0, 1, 2, 3, 4]
    assert q.qsize() == 7


def test_a_lone_message_is_not_held_for_the_whole_wait() -> None:
    q = _one_source()
    q.put(1)
    started = time.monotonic()
    assert q.collect(max_size=100, max_wait_s=5.0, max_gap_s=0.01) == [1]
    assert time.monotonic() - started < 1.0


def test_a_steady_stream_is_collected_until_max_wait() -> None:
    q = _one_source()
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
        batch = q.collect(max_size=10_000, max_wait_s=0.2, max_gap_s=0.05)
    finally:
        stop.set()
        feeder.join()
    assert 20 < len(batch) < 10_000


def test_idle_queue_gives_empty_batch() -> None:
    assert _one_source().collect(max_size=10, max_wait_s=0.01, idle_poll_s=0.01) == []


def test_fair_inbox_takes_sources_in_turn_and_keeps_each_sources_order() -> None:
    """Issue 6 item 3: a flooding source delays only itself; a newcomer waits one turn per busy source."""
    inbox: FairInbox[str] = FairInbox(key=lambda s: s[0])
    for i in range(5):
        inbox.put(f"a{i}")
    inbox.put("b0")
    inbox.put("c0")
    inbox.put("b1")
    assert inbox.collect(max_size=4, max_wait_s=0.0, idle_poll_s=0.0) == ["a0", "b0", "c0", "a1"]
    assert inbox.qsize() == 4
    assert inbox.collect(max_size=100, max_wait_s=0.0, idle_poll_s=0.0) == ["b1", "a2", "a3", "a4"]
    assert inbox.empty() and inbox.collect(max_size=10, max_wait_s=0.0, idle_poll_s=0.0) == []


def test_fair_inbox_sheds_only_what_may_be_shed_once_full() -> None:
    inbox: FairInbox[tuple[str, int]] = FairInbox(key=lambda m: m[0], max_items=2, sheddable=lambda m: m[1] == 0)
    assert inbox.put(("a", 1)) and inbox.put(("a", 0))
    assert inbox.put(("a", 0)) is False, "QoS 0 past the bound is refused"
    assert inbox.put(("b", 1)), "QoS 1 is bounded by the broker's in-flight window, never refused here"
    assert inbox.qsize() == 3


def test_fair_inbox_wakes_for_an_item_put_while_waiting() -> None:
    inbox: FairInbox[int] = FairInbox(key=lambda i: i % 2)
    timer = threading.Timer(0.05, inbox.put, args=(7,))
    timer.start()
    try:
        assert inbox.collect(max_size=10, max_wait_s=0.5, idle_poll_s=5.0, max_gap_s=0.01) == [7]
    finally:
        timer.cancel()


def test_fair_inbox_caps_one_sources_share_of_a_batch() -> None:
    """A batch closes once every waiting source has had its share: a flood's batches stay small."""
    inbox: FairInbox[str] = FairInbox(key=lambda s: s[0])
    for i in range(10):
        inbox.put(f"a{i}")
    inbox.put("b0")
    assert inbox.collect(max_size=100, max_wait_s=1.0, idle_poll_s=0.0, per_source=3) == ["a0", "b0", "a1", "a2"]
    assert inbox.collect(max_size=100, max_wait_s=1.0, idle_poll_s=0.0, per_source=3) == ["a3", "a4", "a5"]


def test_a_source_with_a_cap_of_its_own_takes_only_that_share_of_a_batch() -> None:
    """Issue 6 item 3: a device in the slow lane gets a smaller share of each batch than the others."""
    inbox: FairInbox[tuple[str, int]] = FairInbox(lambda m: m[0])
    for i in range(50):
        inbox.put(("flooder", i))
    for i in range(3):
        inbox.put(("reader", i))
    batch = inbox.collect(1000, 0.0, idle_poll_s=0.0, max_gap_s=0.0, per_source=20, caps={"flooder": 5})
    assert [m for m in batch if m[0] == "flooder"] == [("flooder", i) for i in range(5)]
    assert [m for m in batch if m[0] == "reader"] == [("reader", i) for i in range(3)]
