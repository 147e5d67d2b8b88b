"""A real Sweeper in its own process, for tests that kill and restart sweepers, plus the
`test_fired` effect table the deadline tests count.

    python -m tests.support.sweeper_process DB_URL NAME ORIGIN_ISO SPEED [AT_UNIX_TIME]

sweeps DB_URL with a ScaledClock (simulated time from ORIGIN_ISO, SPEED times real time) and one
handler, kind "test.record", which inserts (deadline id, NAME) into `test_fired` in the sweep's
transaction. ORIGIN_ISO is the simulated time at the real time AT_UNIX_TIME (default: now), so
processes started at different moments agree on the simulated time: at a speed of thousands, a
second of start-up would otherwise put one process hours behind the other, and it would never
get to a deadline first. `test_fired` has no unique constraint on purpose: a deadline fired
twice shows as two rows. Prints "ready" once sweeping; SIGTERM stops it after the sweep in hand.
"""

from __future__ import annotations

import logging
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, text
from sqlalchemy.engine import make_url

from core.clock import ScaledClock
from core.deadlines import Deadline, DeadlineHandler
from core.outbound import Outbound
from gateway.sweeper import Sweeper
from storage.db import make_engine, normalise_url, session_factory
from storage.models import DeadlineRow

REPO = Path(__file__).resolve().parents[2]

RECORD = "test.record"
FIRED_TABLE_DDL = "CREATE TABLE test_fired (deadline_id BIGINT NOT NULL, sweeper VARCHAR(32) NOT NULL)"
INSERT_FIRED = text("INSERT INTO test_fired (deadline_id, sweeper) VALUES (:d, :s)")
REAL_IDLE_S = 0.25  # the sweeper's idle cap in real seconds, whatever the clock's speed


def create_fired_table(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(FIRED_TABLE_DDL))


def record_handler(name: str) -> DeadlineHandler:
    """The effect whose count proves exactly-once: one row per run that committed."""

    def record(session: Any, deadline: Deadline, _now: datetime) -> Sequence[Outbound]:
        session.execute(
            text("INSERT INTO test_fired (deadline_id, sweeper) VALUES (:d, :s)"), {"d": deadline.id, "s": name}
        )
        return ()

    return record


def insert_pending(engine: Engine, dues: Sequence[datetime], created: datetime) -> None:
    """Many "test.record" deadlines at once (subjects d0, d1, …), faster than one schedule() each."""
    rows = [
        {"kind": RECORD, "subject": f"d{i}", "due_at": due, "payload": {}, "state": "pending", "attempts": 0}
        for i, due in enumerate(dues)
    ]
    with engine.begin() as conn:
        conn.execute(insert(DeadlineRow).values(created_at=created, updated_at=created), rows)


def fired_counts(conn: Connection) -> dict[int, int]:
    """deadline id → how many times its effect was committed."""
    rows = conn.execute(text("SELECT deadline_id, count(*) FROM test_fired GROUP BY deadline_id"))
    return {int(d): int(n) for d, n in rows}


def by_sweeper(conn: Connection) -> dict[str, int]:
    return {str(s): int(n) for s, n in conn.execute(text("SELECT sweeper, count(*) FROM test_fired GROUP BY sweeper"))}


def process_url(db_url: str, name: str) -> str:
    """The URL with NAME as PostgreSQL's application_name, so a test can see (pg_stat_activity)
    whether this process is inside a transaction when it kills it."""
    url = make_url(normalise_url(db_url))
    if url.get_backend_name() == "postgresql":
        url = url.update_query_dict({"application_name": name})
    return url.render_as_string(hide_password=False)


class SweeperProcesses:
    """Sweeper processes of one test on one simulated time (`module`: this one, sweeping the test
    kind, or tests.support.escalation_process, the product's handlers); whatever is left running
    is killed at `cleanup`."""

    def __init__(
        self, db_url: str, logs: Path, clock: ScaledClock, speed: float, module: str = "tests.support.sweeper_process"
    ) -> None:
        self.url = db_url
        self.module = module
        self.logs = logs
        self.clock = clock
        self.speed = speed
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", self.module, self.url, name,
                 self.clock.now().isoformat(), str(self.speed), repr(time.time())],
                cwd=REPO, stdout=subprocess.PIPE, stderr=err,
            )  # fmt: skip
        self.procs[name] = proc
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else b""
        assert line.strip() == b"ready", f"sweeper {name} did not start: {self.log(name)}"
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL

    def stop(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, f"sweeper {name} did not stop cleanly: {self.log(name)}"

    def cleanup(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


def run_sweeper(argv: list[str], handlers: Callable[[str, str], Mapping[str, DeadlineHandler]]) -> int:
    """`DB_URL NAME ORIGIN_ISO SPEED [AT_UNIX_TIME]`: sweep with `handlers(db_url, name)` until SIGTERM."""
    db_url, name, origin_iso, speed_text, *at = argv
    speed = float(speed_text)
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
    engine = make_engine(process_url(db_url, name))
    late_s = time.time() - float(at[0]) if at else 0.0
    clock = ScaledClock(datetime.fromisoformat(origin_iso) + timedelta(seconds=late_s * speed), speed)
    sweeper = Sweeper(
        session_factory(engine),
        clock,
        handlers(db_url, name),
        publish=lambda _events: None,
        max_idle_s=REAL_IDLE_S * speed,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    sweeper.run(stop)
    engine.dispose()
    return 0


def main(argv: list[str]) -> int:
    return run_sweeper(argv, lambda _url, name: {RECORD: record_handler(name)})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
