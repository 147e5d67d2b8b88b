"""The login guard's rule (server/login_guard.py) and the hash pool's bound, without HTTP."""

from __future__ import annotations

import asyncio
import threading

import pytest

from server.hash_pool import HashPool, PoolBusy
from server.login_guard import FailureCounter, Limits, LoginGuard


@pytest.mark.parametrize(
    ("failures", "lockout"),
    [(1, 0.0), (4, 0.0), (5, 1.0), (6, 2.0), (7, 4.0), (14, 512.0), (15, 900.0), (1000, 900.0)],
)
def test_lockout_starts_at_lock_after_and_doubles_up_to_the_cap(failures: int, lockout: float) -> None:
    assert Limits(lock_after=5, base_s=1.0, max_s=900.0).lockout_s(failures) == lockout


def test_a_locked_key_waits_and_its_count_is_forgotten_after_a_quiet_hour() -> None:
    counter = FailureCounter(Limits(lock_after=2, base_s=10.0, forget_s=3600.0))
    assert counter.failed("wang", 0.0) == 0.0 and counter.retry_after("wang", 0.0) == 0.0
    assert counter.failed("wang", 1.0) == 10.0
    assert counter.retry_after("wang", 5.0) == 6.0
    assert counter.retry_after("wang", 11.0) == 0.0
    assert counter.failed("wang", 11.0) == 20.0, "the next failure doubles the lockout"
    assert counter.failed("wang", 11.0 + 3600.0) == 0.0, "an hour after the last failure the count starts again"


def test_failures_while_locked_do_not_double_the_lockout_again() -> None:
    """Parallel guesses admitted before the lockout began fail after it started: counted once."""
    counter = FailureCounter(Limits(lock_after=1, base_s=10.0))
    assert counter.failed("wang", 0.0) == 10.0
    assert [counter.failed("wang", 0.5) for _ in range(5)] == [0.0] * 5, "no new lockout started"
    assert counter.retry_after("wang", 0.5) == 9.5
    assert counter.failed("wang", 10.0) == 20.0


def test_tracked_keys_are_bounded_and_the_least_recently_failed_go_first() -> None:
    counter = FailureCounter(Limits(lock_after=1, base_s=60.0, max_keys=3))
    for i, key in enumerate(("a", "b", "c", "d")):
        counter.failed(key, float(i))
    assert len(counter) == 3
    assert counter.retry_after("a", 4.0) == 0.0, "the oldest key was dropped to keep the bound"
    assert counter.retry_after("d", 4.0) > 0


def test_success_forgets_the_user_but_not_the_address() -> None:
    guard = LoginGuard(Limits(lock_after=3), Limits(lock_after=3))
    for name in ("wang", "wang"):
        guard.failed(name, "10.0.0.9", 0.0)
    guard.succeeded("wang")
    assert guard.failed("wang", "10.0.0.8", 1.0) == 0, "the user's count restarted after its login"
    assert guard.failed("li", "10.0.0.9", 1.0) == 1, "the address's third failure locks it"
    assert guard.retry_after("anyone", "10.0.0.9", 1.5) == 1


def test_the_hash_pool_refuses_at_once_past_its_bound_and_frees_its_slots() -> None:
    """Item 8: a login flood must not queue unbounded work; what is past the bound is refused at once."""
    release = threading.Event()
    running = threading.Semaphore(0)

    def slow() -> int:
        running.release()
        release.wait(10)
        return 1

    async def scenario() -> list[int]:
        pool = HashPool(workers=1, queue=1)
        first, second = pool.try_submit(slow), pool.try_submit(slow)
        assert running.acquire(timeout=5)
        with pytest.raises(PoolBusy):
            pool.try_submit(slow)
        release.set()
        results = [await first, await second, await pool.run(slow)]  # the slots came back
        pool.shutdown()
        return results

    assert asyncio.run(scenario()) == [1, 1, 1]


def test_the_hash_pool_caps_hashes_per_second() -> None:
    """A bounded share of a core: past `per_second` starts in a second the pool refuses until time refills it."""
    now = [0.0]

    async def scenario() -> None:
        pool = HashPool(workers=1, queue=10, per_second=2, monotonic=lambda: now[0])
        assert [await pool.run(int) for _ in range(2)] == [0, 0]
        assert pool.busy
        with pytest.raises(PoolBusy):
            pool.try_submit(int)
        now[0] += 0.5  # one more start earned
        assert not pool.busy and await pool.run(int) == 0
        assert pool.busy
        now[0] += 10  # the bucket holds one second's worth, not ten
        assert [await pool.run(int) for _ in range(2)] == [0, 0] and pool.busy
        pool.shutdown()

    asyncio.run(scenario())
