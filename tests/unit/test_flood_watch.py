"""Which devices go to the slow lane, and when they come back (issue 6, item 3: a flooding device
delays only itself). Pure: a fake monotonic clock, no broker."""

from __future__ import annotations

from core.contract import SUBSCRIPTIONS
from gateway.flood_watch import FloodWatch
from gateway.lanes import device_filter, everything, plan, slow_lane_filters


class Ticker:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_device_over_the_limit_in_one_second_is_flooding_and_the_others_are_not() -> None:
    clock = Ticker()
    watch = FloodWatch(limit_per_s=100, hold_s=60, monotonic=clock)
    for i in range(101):
        watch.seen("liyuan/rdr-h02")
        if i % 10 == 0:
            watch.seen("liyuan/rdr-h01")  # an honest reader: 11 taps
    assert watch.flooding() == frozenset({"liyuan/rdr-h02"})


def test_the_limit_itself_is_not_a_flood_and_the_window_restarts_each_second() -> None:
    clock = Ticker()
    watch = FloodWatch(limit_per_s=100, hold_s=60, monotonic=clock)
    for _ in range(3):  # 100 a second for three seconds: at the limit, never over it
        for _ in range(100):
            watch.seen("liyuan/rdr-h02")
        clock.t += 1.0
    assert watch.flooding() == frozenset()


def test_a_flooder_stays_apart_until_it_has_been_quiet_for_the_hold_time() -> None:
    clock = Ticker()
    watch = FloodWatch(limit_per_s=10, hold_s=60, monotonic=clock)
    for _ in range(11):
        watch.seen("liyuan/rdr-h02")
    clock.t += 59.0
    watch.seen("liyuan/rdr-h02")  # a message now and then does not reset the hold
    assert watch.flooding() == frozenset({"liyuan/rdr-h02"})
    clock.t += 1.0
    assert watch.flooding() == frozenset()


def test_quiet_devices_are_forgotten_so_memory_stays_bounded() -> None:
    clock = Ticker()
    watch = FloodWatch(limit_per_s=10, hold_s=60, monotonic=clock)
    for n in range(1000):
        watch.seen(f"liyuan/r{n}")
    clock.t += 61.0
    watch.flooding()
    assert watch._windows == {}


def test_messages_that_name_no_device_are_never_moved() -> None:
    watch = FloodWatch(limit_per_s=1, hold_s=60, monotonic=Ticker())
    for _ in range(10):
        watch.seen("")
    assert watch.flooding() == frozenset()


def test_without_a_flood_the_main_lane_keeps_the_one_wildcard_and_the_slow_lane_has_nothing() -> None:
    assert plan(["liyuan/rdr-h01", "liyuan/rdr-h02"], frozenset()) == (SUBSCRIPTIONS, ())


def test_a_flooding_device_is_subscribed_only_in_the_slow_lane_and_every_other_device_in_the_main_one() -> None:
    main, slow = plan(["liyuan/rdr-h01", "liyuan/rdr-h02", "liyuan/wl-b1"], frozenset({"liyuan/rdr-h02"}))
    assert main == (("patrol/v1/liyuan/+/rdr-h01/#", 1), ("patrol/v1/liyuan/+/wl-b1/#", 1))
    assert slow == tuple((f, 1) for f in slow_lane_filters("liyuan/rdr-h02"))
    assert {f for f, _ in slow} == {
        "patrol/v1/liyuan/device/rdr-h02/status",
        "patrol/v1/liyuan/reader/rdr-h02/tap",
        "patrol/v1/liyuan/sensor/rdr-h02/event",
        "patrol/v1/liyuan/sensor/rdr-h02/telemetry",
    }, "never the reader's ack topic: the main session's answers would come back to the slow one"


def test_a_flooding_device_the_directory_does_not_know_still_gets_its_slow_lane_filter() -> None:
    main, slow = plan(["liyuan/rdr-h01"], frozenset({"liyuan/ghost"}))
    assert main == (("patrol/v1/liyuan/+/rdr-h01/#", 1),)
    assert slow == tuple((f, 1) for f in slow_lane_filters("liyuan/ghost"))


def test_every_filter_of_an_earlier_process_is_known_so_a_restart_can_drop_it() -> None:
    filters = {f for f, _ in everything(["liyuan/rdr-h01"])}
    assert filters == {SUBSCRIPTIONS[0][0], device_filter("liyuan/rdr-h01"), *slow_lane_filters("liyuan/rdr-h01")}


def test_seen_says_when_a_device_starts_flooding_once_so_it_can_be_moved_at_once() -> None:
    clock = Ticker()
    watch = FloodWatch(limit_per_s=3, hold_s=60, monotonic=clock)
    starts = [watch.seen("liyuan/rdr-h02") for _ in range(6)]
    assert starts == [False, False, False, True, False, False]
    clock.t += 61.0  # quiet past the hold time: a new flood starts anew
    assert [watch.seen("liyuan/rdr-h02") for _ in range(4)] == [False, False, False, True]
