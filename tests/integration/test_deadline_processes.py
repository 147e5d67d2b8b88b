"""10,000 deadlines over a simulated day, swept by two sweeper PROCESSES on one PostgreSQL: each
fires exactly once, also when one process is SIGKILLed mid-way and started again.

The processes run the real Sweeper (tests/support/sweeper_process.py) on a ScaledClock: a day of
due times passes in about 12 real seconds. Their handler writes to `test_fired`, which has no
unique constraint, in the sweep's transaction, so a double fire would show as two rows and a lost
one as none.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from core.clock import ScaledClock
from storage.db import make_engine, migrate
from tests.support.databases import postgres_database
from tests.support.mqtt import wait_until
from tests.support.sweeper_process import SweeperProcesses, by_sweeper, create_fired_table, fired_counts, insert_pending

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]
N = 10_000
DAY_S = 86_400.0
REAL_DAY_S = 12.0  # real seconds one simulated day takes
SPEED = DAY_S / REAL_DAY_S
T0 = datetime(2026, 11, 28, tzinfo=UTC)
FIRE_ALL_TIMEOUT_S = 40.0


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """A migrated PostgreSQL database holding N pending deadlines due over the day after T0."""
    with postgres_database() as url:
        engine = make_engine(url)
        migrate(engine)
        create_fired_table(engine)
        rng = random.Random(20261128)
        # whole seconds, so some share a due time and the claim's (due_at, id) order is exercised
        insert_pending(engine, [T0 + timedelta(seconds=rng.randrange(int(DAY_S))) for _ in range(N)], created=T0)
        yield engine
        engine.dispose()


@pytest.fixture
def sweepers(pg_engine: Engine, tmp_path: Path) -> Iterator[SweeperProcesses]:
    s = SweeperProcesses(pg_engine.url.render_as_string(hide_password=False), tmp_path, ScaledClock(T0, SPEED), SPEED)
    yield s
    s.cleanup()


def fired_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM deadlines WHERE state = 'fired'")).scalar_one())


def assert_each_fired_once(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        counts = fired_counts(conn)
        states: dict[str, int] = dict(conn.execute(text("SELECT state, count(*) FROM deadlines GROUP BY state")).all())
        early = conn.execute(text("SELECT count(*) FROM deadlines WHERE fired_at < due_at")).scalar_one()
        shares = by_sweeper(conn)
    doubles = {d: n for d, n in counts.items() if n != 1}
    assert not doubles, f"{len(doubles)} deadlines fired more than once, e.g. {list(doubles.items())[:5]}"
    assert len(counts) == N, f"{N - len(counts)} deadlines never fired"
    assert states == {"fired": N}
    assert early == 0, "a deadline fired before its due time"
    return shares


def inside_a_sweep(engine: Engine, name: str) -> bool:
    """Whether `name`'s transaction has claimed deadlines and not committed: it is running the
    handler's INSERT (pg_stat_activity shows the backend's current or last statement)."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n AND xact_start IS NOT NULL"
                " AND query LIKE 'INSERT INTO test_fired%'"
            ),
            {"n": name},
        ).scalar_one()
    return bool(found)


def freeze_inside_a_sweep(engine: Engine, proc: subprocess.Popen[bytes], name: str, timeout_s: float = 10) -> None:
    """SIGSTOP the process at a moment it holds a claimed, uncommitted batch, so the SIGKILL that
    follows surely lands mid-transaction (a stopped process cannot commit while we look)."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        os.kill(proc.pid, signal.SIGSTOP)
        if inside_a_sweep(engine, name):
            return
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.003)  # let it run into its next sweep
    raise AssertionError(f"never caught {name} inside a sweep within {timeout_s}s")


def test_two_sweeper_processes_fire_each_of_10000_deadlines_exactly_once(
    pg_engine: Engine, sweepers: SweeperProcesses
) -> None:
    for name in ("a", "b"):
        sweepers.start(name)
    wait_until(lambda: fired_count(pg_engine) >= N, timeout=FIRE_ALL_TIMEOUT_S, what=f"{N} deadlines fired")
    for name in ("a", "b"):
        sweepers.stop(name)
    shares = assert_each_fired_once(pg_engine)
    assert set(shares) == {"a", "b"}, f"only one process swept: {shares}"
    print(f"fired by process: {shares}")


def test_sigkilled_sweeper_process_loses_and_doubles_nothing(pg_engine: Engine, sweepers: SweeperProcesses) -> None:
    a = sweepers.start("a")
    sweepers.start("b")
    wait_until(lambda: fired_count(pg_engine) >= N * 0.3, timeout=FIRE_ALL_TIMEOUT_S, what="a third fired")
    freeze_inside_a_sweep(pg_engine, a, "a")  # its batch claimed, handlers run, not committed
    os.kill(a.pid, signal.SIGKILL)
    assert a.wait(10) == -signal.SIGKILL
    at_kill = fired_count(pg_engine)
    assert 0 < at_kill < N, "the kill was not mid-way"
    wait_until(lambda: fired_count(pg_engine) >= at_kill + 1000, timeout=20, what="b sweeping alone")
    sweepers.start("a-restarted")
    wait_until(lambda: fired_count(pg_engine) >= N, timeout=FIRE_ALL_TIMEOUT_S, what=f"{N} deadlines fired")
    for name in ("b", "a-restarted"):
        sweepers.stop(name)
    shares = assert_each_fired_once(pg_engine)
    assert set(shares) == {"a", "b", "a-restarted"}, f"not every process fired some: {shares}"
    print(f"fired by process: {shares}; SIGKILLed at {at_kill} fired")
