"""Deadline benchmark: how late 10,000 durable deadlines fire on PostgreSQL, quiet and under ingest.

Why it exists: patrol rounds, alarms and tickets act on deadlines (DESIGN.md, "Deadlines live in
the database"); a missed-checkpoint or ack-by alert is only as timely as the sweeper. The target
is p99 fire lag under 1 s while taps stream in. The in-run baseline is the same 10,000 deadlines
with no ingest running, because absolute figures move with the machine.

Each run: 10,000 pending deadlines, due evenly over `--spread` seconds starting a few seconds
ahead, fired by the real `gateway.sweeper.Sweeper` (SystemClock) in this process; the handler
inserts one row, in the sweep's transaction. The ingest run adds the gateway (`python -m app.cli
gateway`, a subprocess) with taps published at `--rate`/s through a private Mosquitto by another
process. The gateway runs on the same database, as in production; its own sweeper claims only the
kinds it knows, so the bench's kind is left to the bench's sweeper.
What this leaves out: in production the sweeper runs inside the gateway's process and shares its
interpreter lock with ingestion.

Lag per deadline: claimed = fired_at − due_at (the sweeper's clock when it claimed it); committed =
the time its sweep committed − due_at (what any other reader can first see).

Run from the repository root:  .venv/bin/python bench/deadlines.py [--deadlines N] [--spread S] ...
Figures, not a verdict: exit 0 when both runs fired every deadline, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `tests.support` is not an installed package
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import Engine, delete, insert, text  # noqa: E402

from bench.gateway_process import GatewayProcess  # noqa: E402
from bench.ingest import prepare_database  # noqa: E402
from bench.mqtt_load import Login, Publisher, bench_broker, demo_tags, device_logins, paced, tap_messages  # noqa: E402
from bench.progress import log, work_dir  # noqa: E402
from bench.report import fmt, machine_line, print_problems_of, print_table  # noqa: E402
from bench.runs import percentile, signin_count  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.deadlines import Deadline  # noqa: E402
from core.outbound import Outbound  # noqa: E402
from gateway.sweeper import Sweeper  # noqa: E402
from storage.db import session_factory  # noqa: E402
from storage.models import DeadlineRow  # noqa: E402
from tests.support.databases import postgres_database  # noqa: E402
from tests.support.mosquitto import MosquittoBroker  # noqa: E402

KIND = "bench.touch"
EFFECT = text("INSERT INTO bench_effects (deadline_id) VALUES (:d)")
FIRED_COUNT = text(f"SELECT count(*) FROM deadlines WHERE state = 'fired' AND kind = '{KIND}'")
FIRED_LAGS = text(
    f"SELECT EXTRACT(EPOCH FROM fired_at - due_at) FROM deadlines WHERE state = 'fired' AND kind = '{KIND}'"
)


class TimedSweeper(Sweeper):
    """The real Sweeper, noting when each sweep's deadlines became visible (its commit)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(session_factory(engine), SystemClock(), {KIND: self._touch}, lambda _e: None)
        self._in_sweep: list[datetime] = []
        self.commit_lag_s: list[float] = []

    def _touch(self, session: Any, deadline: Deadline, _now: datetime) -> Sequence[Outbound]:
        session.execute(EFFECT, {"d": deadline.id})
        self._in_sweep.append(deadline.due_at)
        return ()

    def sweep_once(self) -> int:
        self._in_sweep.clear()
        claimed = super().sweep_once()  # returns once committed (raises, and is not counted, if not)
        committed = datetime.now(UTC)
        self.commit_lag_s.extend((committed - due).total_seconds() for due in self._in_sweep)
        return claimed


@dataclass
class RunResult:
    name: str
    scheduled: int = 0
    fired: int = 0
    seconds: float = math.nan
    claim_lag_ms: list[float] = field(default_factory=list)
    commit_lag_ms: list[float] = field(default_factory=list)
    taps: int = 0
    problems: list[str] = field(default_factory=list)


def paced_taps(logins: dict[str, Login], rate: int, seconds: float, tags: list[str], out: Any) -> None:
    """Child process: QoS 1 taps at `rate`/s for `seconds`, in a process of its own so the
    publisher's work does not share the sweeper's interpreter lock; each reader on its own account."""
    publisher = Publisher(logins, "dl-taps")
    total, start = int(rate * seconds), time.monotonic()
    for _id, topic, payload in paced(tap_messages("dlt", total, tags), rate):
        publisher.publish(topic, payload)
    publisher.close()
    out.put((total, time.monotonic() - start))


def run_deadlines(engine: Engine, sweeper: TimedSweeper, res: RunResult, args: argparse.Namespace) -> None:
    """Schedule N deadlines due over the spread, wait until all fired (bounded), collect the lags."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM bench_effects"))
        conn.execute(delete(DeadlineRow).where(DeadlineRow.kind == KIND))
    sweeper.commit_lag_s.clear()
    n, lead = args.deadlines, 3.0
    start = datetime.now(UTC) + timedelta(seconds=lead)
    rows = [
        {"kind": KIND, "subject": f"{res.name}-{i}", "due_at": start + timedelta(seconds=args.spread * i / n)}
        for i in range(n)
    ]
    now = datetime.now(UTC)
    with engine.begin() as conn:  # pending before the first is due: all 10,000 wait at once
        conn.execute(
            insert(DeadlineRow).values(payload={}, state="pending", attempts=0, created_at=now, updated_at=now), rows
        )
    res.scheduled = n
    started = time.monotonic()
    give_up = started + lead + args.spread + args.timeout
    while time.monotonic() < give_up:
        with engine.connect() as conn:
            res.fired = conn.execute(FIRED_COUNT).scalar_one()
        if res.fired >= n:
            break
        time.sleep(0.2)  # polling another thread's outcome
    res.seconds = time.monotonic() - started
    if res.fired < n:
        res.problems.append(f"only {res.fired} of {n} fired within {args.timeout:.0f} s after the last was due")
    with engine.connect() as conn:
        lags = conn.execute(FIRED_LAGS)
        res.claim_lag_ms = sorted(1000 * float(lag) for (lag,) in lags)
    res.commit_lag_ms = sorted(1000 * s for s in sweeper.commit_lag_s)


def ingest_run(
    url: str, engine: Engine, sweeper: TimedSweeper, broker: MosquittoBroker, workdir: Path, args: argparse.Namespace
) -> RunResult:
    """The gateway on the same database, as in production; its own sweeper fires only the kinds it
    knows, so the bench's deadlines are left to the bench's sweeper."""
    res = RunResult("with ingest")
    gateway = GatewayProcess(broker, url, workdir / "gateway.log")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    publisher = None
    try:
        gateway.start()
        tags = demo_tags()
        seconds = 3.0 + args.spread + 3.0  # the stream covers the whole run: lead, spread, tail
        publisher = ctx.Process(
            target=paced_taps, args=(device_logins(broker), args.rate, seconds, tags, out), daemon=True
        )
        publisher.start()
        time.sleep(1.0)  # let the stream reach its pace before the first deadline is scheduled
        before = signin_count(engine)
        run_deadlines(engine, sweeper, res, args)
        res.taps = signin_count(engine) - before
        publisher.join(seconds + 60)
    except Exception as exc:
        res.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        if publisher is not None and publisher.is_alive():
            publisher.kill()
        if (rc := gateway.stop()) != 0:
            res.problems.append(f"gateway exit code after SIGTERM: {rc}")
    return res


def print_report(args: argparse.Namespace, version: str, runs: list[RunResult]) -> None:
    def lag(values: list[float], q: float) -> str:
        return fmt(percentile(values, q), 1)  # nearest rank: q = 1 is the maximum

    print()
    print(machine_line())
    print(f"{version}; {args.deadlines:,} pending deadlines due evenly over {args.spread:g} s, one sweeper (batch 200)")
    print(f"ingest run: taps offered at {args.rate:,}/s to the gateway (Mosquitto, same database)\n")
    rows: list[tuple[str, Any]] = [
        ("fired / scheduled", lambda r: f"{r.fired:,} / {r.scheduled:,}"),
        ("fire lag, claimed p50 (ms)", lambda r: lag(r.claim_lag_ms, 0.50)),
        ("fire lag, claimed p99 (ms)", lambda r: lag(r.claim_lag_ms, 0.99)),
        ("fire lag, claimed max (ms)", lambda r: lag(r.claim_lag_ms, 1.0)),
        ("fire lag, committed p50 (ms)", lambda r: lag(r.commit_lag_ms, 0.50)),
        ("fire lag, committed p99 (ms)", lambda r: lag(r.commit_lag_ms, 0.99)),
        ("fire lag, committed max (ms)", lambda r: lag(r.commit_lag_ms, 1.0)),
        ("taps committed meanwhile", lambda r: f"{r.taps:,}" if r.name != "quiet" else "-"),
        ("  taps/s", lambda r: fmt(r.taps / r.seconds) if r.name != "quiet" else "-"),
    ]
    print_table(rows, runs, [r.name for r in runs])
    print("\nreference target (not checked): fire lag p99 < 1 s with the ingest stream running")
    print_problems_of(runs)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deadlines", type=int, default=10_000, help="pending deadlines per run (default 10000)")
    p.add_argument("--spread", type=float, default=15.0, help="seconds over which they come due (default 15)")
    p.add_argument("--rate", type=int, default=1000, help="taps/s offered during the ingest run (default 1000)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds allowed after the last is due (default 30)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (gateway log)")
    args = p.parse_args(argv)
    if args.deadlines < 1 or not 1 <= args.spread <= 60 or args.rate < 1 or args.timeout <= 0:
        p.error("bad arguments (--spread is 1..60 s so a run stays short)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    broker = bench_broker()
    runs: list[RunResult] = []
    version = "PostgreSQL ?"
    with work_dir("patrol-bench-deadlines-", args.keep) as workdir, postgres_database() as url:
        engine, version = prepare_database(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_effects (deadline_id BIGINT NOT NULL)"))
        sweeper = TimedSweeper(engine)
        sweeper.start()
        try:
            log(f"quiet run: {args.deadlines} deadlines due over {args.spread:g} s, no ingest")
            runs.append(RunResult("quiet"))
            run_deadlines(engine, sweeper, runs[-1], args)
            broker.start()
            log(f"ingest run: the same, with {args.rate} taps/s through the gateway")
            runs.append(ingest_run(url, engine, sweeper, broker, workdir, args))
        finally:
            sweeper.stop()
            broker.cleanup()
            engine.dispose()
    print_report(args, version, runs)
    return 1 if any(r.problems for r in runs) or len(runs) < 2 else 0


if __name__ == "__main__":
    sys.exit(main())
