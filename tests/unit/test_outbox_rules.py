"""The outbox's retry schedule (storage.outbox.retry_at): 5 s doubling to a 15 min cap, then `failed`
after MAX_ATTEMPTS, which spans about a day so a receiver down over a night is caught up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.outbox import MAX_ATTEMPTS, retry_at

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [
        (1, timedelta(seconds=5)),
        (2, timedelta(seconds=10)),
        (3, timedelta(seconds=20)),
        (8, timedelta(seconds=640)),
        (9, timedelta(minutes=15)),  # 1280 s would be past the cap
        (MAX_ATTEMPTS - 1, timedelta(minutes=15)),
    ],
)
def test_a_failed_post_is_retried_after_a_doubling_capped_delay(attempts: int, delay: timedelta) -> None:
    assert retry_at(attempts, NOW) == NOW + delay


@pytest.mark.parametrize(("attempts", "max_attempts"), [(MAX_ATTEMPTS, MAX_ATTEMPTS), (3, 3), (4, 3), (1, 1)])
def test_after_max_attempts_there_is_no_retry(attempts: int, max_attempts: int) -> None:
    assert retry_at(attempts, NOW, max_attempts) is None


def test_the_attempts_span_about_a_day() -> None:
    span = sum((retry_at(a, NOW) - NOW for a in range(1, MAX_ATTEMPTS)), timedelta())  # type: ignore[operator]
    assert timedelta(hours=20) <= span <= timedelta(hours=28)
