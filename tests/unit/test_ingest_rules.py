"""Ingestion rules that do not depend on a message's kind (core/ingest.py), and the clocks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from core.clock import FakeClock, ScaledClock
from core.ingest import answers_reader, channel_fits, first_of_each, status_supersedes

AT = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("role", "kind", "fits"),
    [
        ("reader", "handheld_reader", True),
        ("reader", "fixed_reader", True),
        ("reader", "gas", False),
        ("sensor", "gas", True),
        ("sensor", "water_leak", True),
        ("sensor", "fixed_reader", False),
        ("device", "gas", True),
        ("device", "handheld_reader", True),
        ("gizmo", "gas", False),
    ],
)
def test_which_device_kind_may_publish_on_which_channel(role: str, kind: str, fits: bool) -> None:
    assert channel_fits(role, kind) is fits


def test_only_refused_taps_are_answered() -> None:
    assert answers_reader("reader", "tap")
    assert not answers_reader("sensor", "telemetry")
    assert not answers_reader("device", "status")
    assert not answers_reader(None, None)


def test_a_message_twice_in_one_batch_has_one_effect() -> None:
    assert first_of_each([("d1", "a"), ("d1", "b"), ("d1", "a"), ("d2", "a")], key=lambda m: m) == [
        ("d1", "a"),
        ("d1", "b"),
        ("d2", "a"),
    ]


def test_status_last_write_wins_by_observation_time() -> None:
    assert status_supersedes(None, AT)
    assert status_supersedes(AT, AT), "a repeat of the same status is harmless"
    assert status_supersedes(AT, AT + timedelta(seconds=1))
    assert not status_supersedes(AT, AT - timedelta(seconds=1)), "an old retained status never hides a newer one"


def test_fake_clock_moves_only_when_told_and_never_back() -> None:
    clock = FakeClock(AT)
    assert (clock.now(), clock.monotonic()) == (AT, 0.0)
    clock.advance(90)
    assert (clock.now(), clock.monotonic()) == (AT + timedelta(seconds=90), 90.0)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_fake_clock_wait_returns_when_the_time_is_reached_or_stopped() -> None:
    clock = FakeClock(AT)
    stop = threading.Event()
    waiter = threading.Thread(target=clock.wait, args=(stop, 60))
    waiter.start()
    clock.advance(59)
    assert waiter.is_alive(), "59 s of simulated time is not 60"
    clock.advance(1)
    waiter.join(5)
    assert not waiter.is_alive()
    stop.set()
    assert clock.wait(stop, 3600) is True


def test_scaled_clock_runs_simulated_time_faster() -> None:
    clock = ScaledClock(AT, speed=3600)
    assert clock.now() >= AT
    assert clock.wait(threading.Event(), 36) is False  # 36 simulated seconds are 10 real ms
    assert clock.now() >= AT + timedelta(seconds=36)
