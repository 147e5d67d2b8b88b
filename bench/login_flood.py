"""Login-flood benchmark: do guards' taps still get their answers on time while 64 clients post
wrong passwords to the API as fast as they can?

Why it exists (issue 6, item 8): 64 parallel failed logins once made /healthz take 8–12 s, guards'
tap answers 3.5 s median (13 ms idle) and memory 100 → 826 MB, because every login hashed on a
shared request thread with argon2's 64 MiB default. Now logins hash in a bounded pool (one worker,
a queue of 16, at most 5 hashes started a second, 19 MiB per hash), past which they are refused
with 429 (busy); a user name or address that keeps failing is locked out (429); every refusal is
answered 1 s late, so a client that ignores Retry-After cannot flood. Target: tap answer p99
under 250 ms with the flood running.

The product runs as `patrol serve` runs it (broker client, gateway, sweeper and API in one
process: `python -m app.cli serve`, a subprocess) against a private Mosquitto and a fresh database
with the demo site. For each mode: taps at `--rate`/s from the demo's handheld readers for
`--seconds` with nothing else (idle), then the same taps while `--clients` keep-alive connections
from another process post wrong passwords back to back (flood; raw HTTP on asyncio, so the attacker
costs this machine ~3 % of a core: a real one runs elsewhere). Latency is publish → the reader's answer;
/healthz is probed every 0.1 s meanwhile. Modes:
  shipped  the shipped limits: the flood soon meets 429s (one address, one user name)
  hashing  the lockouts set out of reach (PATROL_LOGIN_LOCKOUT_AFTER_*), so every login that the
           pool admits is hashed: what the pool alone protects (as against a botnet of addresses)

Run from the repository root:  .venv/bin/python bench/login_flood.py [--seconds S] [--rate R] ...
Figures, not a verdict: exit 0 when the runs completed, 1 when something broke. 127.0.0.1 only.
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
import queue  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402

from bench.api_load import PASSWORD, USER, HealthProbe, ServeProcess, flood_process  # noqa: E402
from bench.gateway_process import CpuMeter, PeakRss  # noqa: E402
from bench.ingest import prepare_database  # noqa: E402
from bench.mqtt_load import AckCollector, Publisher, demo_tags, device_logins, paced, running_broker, tap_messages  # noqa: E402
from bench.progress import log, work_dir  # noqa: E402
from bench.report import fmt, machine_line, print_problems_of  # noqa: E402
from bench.runs import percentile  # noqa: E402
from server.auth import Role, create_user  # noqa: E402
from storage.db import session_factory, transaction  # noqa: E402
from tests.support.databases import database  # noqa: E402
from tests.support.mosquitto import MosquittoBroker  # noqa: E402

MB = 1024 * 1024
MODES = {
    "shipped": {},
    "hashing": {
        "PATROL_LOGIN_LOCKOUT_AFTER_USER_FAILURES": "1000000000",
        "PATROL_LOGIN_LOCKOUT_AFTER_ADDRESS_FAILURES": "1000000000",
    },
}


# ----------------------------------------------------------------------------- one phase, one mode


@dataclass
class Phase:
    offered: int = 0
    answered: int = 0
    taps_ms: list[float] = field(default_factory=list)
    healthz_ms: list[float] = field(default_factory=list)
    rss_peak_mb: float = math.nan
    logins: Counter[str] = field(default_factory=Counter)  # "401", "429", "429 busy" (the pool's), "error"
    login_ms: list[float] = field(default_factory=list)
    cpu_pct: dict[str, float] = field(default_factory=dict)
    flood_cpu_pct: float = math.nan


@dataclass
class ModeResult:
    name: str
    problems: list[str] = field(default_factory=list)
    rss_ready_mb: float = math.nan
    idle: Phase = field(default_factory=Phase)
    flood: Phase = field(default_factory=Phase)
    exit_code: int | None = None


def run_phase(server: ServeProcess, proc: psutil.Process, acks: AckCollector, prefix: str, args: Any) -> Phase:
    """Paced taps for --seconds with /healthz probed and RSS sampled; the flood runs beside it if started."""
    phase, sampler = Phase(), PeakRss(proc, max_s=args.seconds + 120)
    probe = HealthProbe(server.base, args.seconds + 120)
    sampler.start()
    probe.start()
    cpu = CpuMeter(proc, server.broker)
    publisher = Publisher(device_logins(server.broker), prefix)
    sent: dict[str, float] = {}
    try:
        for msg_id, topic, payload in paced(
            tap_messages(prefix, round(args.rate * args.seconds), args.tags), args.rate
        ):
            sent[msg_id] = time.monotonic()
            publisher.publish(topic, payload)
    finally:
        publisher.close()
        phase.cpu_pct = cpu.percent()
        phase.offered = len(sent)
        phase.answered = acks.wait_for(prefix, len(sent), timeout_s=60)
        probe.halt.set()
        sampler.halt.set()
        probe.join(15)
        sampler.join(5)
    phase.taps_ms = sorted(1000 * (acks.first_seen[i] - t) for i, t in sent.items() if i in acks.first_seen)
    phase.healthz_ms = sorted(probe.times)
    phase.rss_peak_mb = sampler.peak / MB
    return phase


def run_mode(mode: str, broker: MosquittoBroker, url: str, workdir: Path, args: Any) -> ModeResult:
    res = ModeResult(mode)
    server = ServeProcess(broker, url, workdir / f"serve-{mode}.log", MODES[mode])
    acks: AckCollector | None = None
    try:
        proc = server.start()
        res.rss_ready_mb = proc.memory_info().rss / MB
        acks = AckCollector(broker)
        time.sleep(1.0)  # let start-up work (housekeeping, the first sweep) settle before the idle figure
        log(f"{mode}: idle, {args.rate} taps/s for {args.seconds} s")
        res.idle = run_phase(server, proc, acks, f"i{mode[:2]}", args)  # AckCollector counts by 3-char prefix
        log(f"{mode}: the same taps while {args.clients} clients post wrong passwords")
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        flooder = ctx.Process(target=flood_process, args=(server.api_port, args.clients, args.seconds + 2, results))
        flooder.start()
        time.sleep(1.0)  # the flood is running before the first measured tap
        res.flood = run_phase(server, proc, acks, f"f{mode[:2]}", args)
        try:
            statuses, times, res.flood.flood_cpu_pct = results.get(timeout=90)
            res.flood.logins, res.flood.login_ms = Counter(statuses), times
        except queue.Empty:
            res.problems.append("the flood process sent no result")
        flooder.join(10)
        if flooder.is_alive():
            flooder.kill()
    except Exception as exc:
        res.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        res.exit_code = server.stop()
        if acks is not None:
            acks.close()
    for phase, name in ((res.idle, "idle"), (res.flood, "flood")):
        if phase.answered < phase.offered:
            res.problems.append(f"{name}: {phase.answered} of {phase.offered} taps answered")
    if res.exit_code != 0:
        res.problems.append(f"patrol serve exit code after SIGTERM: {res.exit_code}")
    issues = server.issues()
    for line, times in issues.most_common(5):
        if "locked out" not in line:
            res.problems.append(f"serve log: {times} × {line[:160]}")
    return res


# ----------------------------------------------------------------------------- report and main


def _p(values: list[float], q: float) -> str:
    return fmt(percentile(values, q), 1)


def print_report(args: Any, version: str, results: list[ModeResult]) -> None:
    print()
    print(machine_line())
    print(
        f"database: {version}; taps: {args.rate}/s for {args.seconds} s per phase from 6 handheld readers; "
        f"flood: {args.clients} clients posting wrong passwords back to back (one process, 127.0.0.1)"
    )
    print()
    cols = [(r, ph, f"{r.name} {name}") for r in results for name, ph in (("idle", r.idle), ("flood", r.flood))]
    print(f"{'':30}" + "".join(f"{label:>16}" for _r, _ph, label in cols))
    rows = [
        ("tap answers / offered", lambda r, ph: f"{ph.answered}/{ph.offered}"),
        ("tap answer p50 (ms)", lambda r, ph: _p(ph.taps_ms, 0.50)),
        ("tap answer p99 (ms)", lambda r, ph: _p(ph.taps_ms, 0.99)),
        ("tap answer max (ms)", lambda r, ph: fmt(ph.taps_ms[-1] if ph.taps_ms else math.nan, 1)),
        ("/healthz p50 (ms)", lambda r, ph: _p(ph.healthz_ms, 0.50)),
        ("/healthz p99 (ms)", lambda r, ph: _p(ph.healthz_ms, 0.99)),
        ("logins/s answered", lambda r, ph: fmt(ph.logins.total() / args.seconds) if ph.logins else "-"),
        (
            "  401 / 429 locked / busy / err",
            lambda r, ph: (
                "/".join(str(ph.logins[c]) for c in ("401", "429", "429 busy", "error")) if ph.logins else "-"
            ),
        ),
        ("  login answer p50 (ms)", lambda r, ph: _p(ph.login_ms, 0.50) if ph.login_ms else "-"),
        ("  login answer p99 (ms)", lambda r, ph: _p(ph.login_ms, 0.99) if ph.login_ms else "-"),
        ("RSS ready → peak (MB)", lambda r, ph: f"{fmt(r.rss_ready_mb)} → {fmt(ph.rss_peak_mb)}"),
        ("CPU patrol serve (% of a core)", lambda r, ph: fmt(ph.cpu_pct.get("gateway", math.nan))),
        ("CPU flood clients (% of a core)", lambda r, ph: fmt(ph.flood_cpu_pct) if ph.logins else "-"),
        ("CPU machine (% of a core)", lambda r, ph: fmt(ph.cpu_pct.get("machine", math.nan))),
    ]
    for label, cell in rows:
        print(f"{label:30}" + "".join(f"{cell(r, ph):>16}" for r, ph, _label in cols))
    print("\nreference target (not checked): tap answer p99 < 250 ms with the flood running")
    print_problems_of(results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=15.0, help="length of each phase (default 15)")
    p.add_argument("--rate", type=int, default=100, help="taps/s offered in each phase (default 100)")
    p.add_argument("--clients", type=int, default=64, help="parallel login clients in the flood (default 64)")
    p.add_argument("--modes", default="shipped,hashing", help="comma-separated: shipped,hashing")
    p.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"], help="default sqlite")
    p.add_argument("--keep", action="store_true", help="keep the work dir (the server's logs)")
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(args.modes) - set(MODES) or not 0 < args.seconds <= 600 or not 0 < args.rate <= 5000:
        p.error("bad arguments")
    if not 1 <= args.clients <= 512:
        p.error("--clients must be 1–512")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.tags = demo_tags()
    results: list[ModeResult] = []
    version = "?"
    with work_dir("patrol-login-flood-", args.keep) as workdir, running_broker() as broker:
        try:
            with database(args.database, workdir) as url:
                engine, version = prepare_database(url)
                with transaction(session_factory(engine)) as session:
                    create_user(session, USER, PASSWORD, Role.ADMIN, None, datetime.now(UTC))
                engine.dispose()
                for mode in args.modes:
                    results.append(run_mode(mode, broker, url, workdir, args))
        except Exception as exc:
            results.append(ModeResult("setup", problems=[f"{type(exc).__name__}: {exc}"]))
    print_report(args, version, results)
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
