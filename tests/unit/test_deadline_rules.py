"""The pure deadline rules: retry backoff, giving up, states and key limits (core/deadlines.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.deadlines import (
    FINISHED,
    MAX_ATTEMPTS,
    MAX_ERROR_CHARS,
    RETRY_BASE,
    RETRY_CAP,
    Deadline,
    DeadlineState,
    check_key,
    describe_error,
    next_attempt,
    retry_delay,
)

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def test_retry_delay_doubles_from_five_seconds() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [timedelta(seconds=s) for s in (5, 10, 20, 40)]
    assert retry_delay(1) == RETRY_BASE


def test_retry_delay_is_capped_even_for_huge_counts() -> None:
    delays = [retry_delay(n) for n in range(1, 200)]
    assert max(delays) == RETRY_CAP == timedelta(minutes=15)
    assert delays == sorted(delays), "a later retry never comes sooner than an earlier one"
    assert retry_delay(10**6) == RETRY_CAP


def test_retry_delay_counts_failures_from_one() -> None:
    with pytest.raises(ValueError):
        retry_delay(0)


def test_failing_deadline_is_retried_until_max_attempts_then_given_up() -> None:
    retries = [next_attempt(n, NOW) for n in range(1, MAX_ATTEMPTS)]
    assert all(r is not None and r > NOW for r in retries)
    assert next_attempt(1, NOW) == NOW + timedelta(seconds=5)
    assert next_attempt(MAX_ATTEMPTS, NOW) is None
    assert next_attempt(MAX_ATTEMPTS + 5, NOW) is None


def test_giving_up_takes_minutes_not_seconds_or_days() -> None:
    """A passing problem (a lock, a reload) has time to clear; a bug is reported within the hour."""
    total = sum((retry_delay(n) for n in range(1, MAX_ATTEMPTS)), timedelta())
    assert timedelta(minutes=10) < total < timedelta(hours=1)


def test_states_are_stored_names_and_only_pending_is_live() -> None:
    assert [s.value for s in DeadlineState] == ["pending", "fired", "cancelled", "failed"]
    assert all(len(s.value) <= 16 for s in DeadlineState)  # deadlines.state is String(16)
    assert DeadlineState.PENDING not in FINISHED
    assert {DeadlineState.FIRED, DeadlineState.CANCELLED, DeadlineState.FAILED} == FINISHED
    assert DeadlineState("fired") is DeadlineState.FIRED


def test_keys_must_fit_the_table() -> None:
    check_key("alarm.ack_by", "alarm-42")
    check_key("k" * 64, "s" * 128)
    for kind, subject in (("", "x"), ("k" * 65, "x"), ("k", ""), ("k", "s" * 129)):
        with pytest.raises(ValueError):
            check_key(kind, subject)


def test_error_text_names_the_exception_and_is_bounded() -> None:
    assert describe_error(KeyError("site")) == "KeyError: 'site'"
    long = describe_error(RuntimeError("x" * 10_000 + "\x00"))
    assert len(long) == MAX_ERROR_CHARS and long.startswith("RuntimeError: xxx") and long.endswith("…")
    assert "\x00" not in describe_error(ValueError("a\x00b"))


def test_deadline_is_a_frozen_snapshot() -> None:
    d = Deadline(1, "k", "s", NOW, {"a": 1}, 0)
    with pytest.raises(AttributeError):
        d.attempts = 3  # type: ignore[misc]
    assert Deadline(2, "k", "s", NOW).payload == {} and Deadline(2, "k", "s", NOW).attempts == 0
