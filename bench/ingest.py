"""Ingest benchmark: taps through a real Mosquitto into the gateway and a real database.

Why it exists: the gateway's promise is "every tap committed, then acknowledged"; this measures
what that costs against the ceiling the machine itself sets. The ceiling is measured in the
same run (a bare paho QoS 1 subscriber with manual acks, the same client settings the gateway
uses), because absolute figures move with the machine (/work/shared/FIELD-NOTES.md).

For each database: committed taps/s at full speed (first publish until the sign_ins count
reaches N), publish-to-ack latency at a paced offered rate (the ack is published only after the
batch commits, so it bounds publish-to-commit from above) and the gateway's peak RSS.

Run from the repository root:  .venv/bin/python bench/ingest.py [--taps N] [--rate R] ...
Figures, not a verdict: exit 0 when the runs completed, 1 when something broke.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `tests.support` is not an installed package
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import sqlite3  # noqa: E402

from sqlalchemy import Engine, text  # noqa: E402

from app.cli import DEMO_SITE  # noqa: E402
from bench.gateway_process import GatewayProcess, PeakRss  # noqa: E402
from bench.mqtt_load import AckCollector, demo_tags, run_baseline, running_broker  # noqa: E402
from bench.progress import log, work_dir  # noqa: E402
from bench.report import database_kinds, print_report  # noqa: E402
from bench.runs import Context, DbResult, latency_run, throughput_run  # noqa: E402
from storage.db import make_engine, migrate, session_factory, transaction  # noqa: E402
from storage.sitefile.load import load_site  # noqa: E402
from storage.sitefile.parse import parse_site_file  # noqa: E402
from tests.support.databases import database  # noqa: E402
from tests.support.mosquitto import MosquittoBroker  # noqa: E402

MB = 1024 * 1024


def prepare_database(url: str) -> tuple[Engine, str]:
    """Schema and the demo site, as `patrol site load` would; returns the engine and the server version."""
    engine = make_engine(url)
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        load_site(session, parse_site_file(DEMO_SITE))
    if engine.dialect.name == "sqlite":
        return engine, f"SQLite {sqlite3.sqlite_version}"
    with engine.connect() as conn:
        version = str(conn.execute(text("SHOW server_version")).scalar_one()).split()[0]
    return engine, f"PostgreSQL {version}"


def run_database(
    kind: str, broker: MosquittoBroker, workdir: Path, tags: list[str], args: argparse.Namespace
) -> DbResult:
    res = DbResult(kind)
    (workdir / kind).mkdir()
    with database(kind, workdir / kind) as url:
        engine, res.version = prepare_database(url)
        gateway = GatewayProcess(broker, url, workdir / f"gateway-{kind}.log")
        acks: AckCollector | None = None
        sampler: PeakRss | None = None
        try:
            proc = gateway.start()
            acks, sampler = AckCollector(broker), PeakRss(proc)
            sampler.start()
            ctx = Context(broker, engine, acks, proc, tags, args, res)
            log(f"{kind}: throughput run, {args.taps} taps at full speed")
            if throughput_run(ctx):
                log(f"{kind}: latency run, {args.rate} taps/s for {args.paced_seconds} s")
                latency_run(ctx)
        except Exception as exc:
            res.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            if sampler is not None:
                sampler.halt.set()
                sampler.join(5)
                res.rss_start_mb, res.rss_peak_mb = sampler.first / MB, sampler.peak / MB
            res.exit_code = gateway.stop()
            if acks is not None:
                acks.close()
            engine.dispose()
        res.log_issues = gateway.issues()
    if res.exit_code != 0:
        res.problems.append(f"gateway exit code after SIGTERM: {res.exit_code}")
    return res


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--taps", type=int, default=100_000, help="taps per throughput run (default 100000)")
    p.add_argument("--rate", type=int, default=1000, help="offered taps/s in the latency run (default 1000)")
    p.add_argument("--paced-seconds", type=float, default=10.0, help="length of the latency run (default 10)")
    p.add_argument("--databases", default="postgresql,sqlite", help="comma-separated: postgresql,sqlite")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per throughput run (default 300)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (gateway logs, SQLite file)")
    args = p.parse_args(argv)
    args.databases = database_kinds(args.databases, p)
    if args.taps < 2 or args.rate < 1 or args.paced_seconds <= 0:
        p.error("bad arguments")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tags = demo_tags()
    results: list[DbResult] = []
    with work_dir("patrol-bench-", args.keep) as workdir, running_broker() as broker:
        log(f"baseline: {args.taps} taps")
        baseline = run_baseline(broker, args.taps, tags, timeout_s=args.timeout)
        for kind in args.databases:
            try:
                results.append(run_database(kind, broker, workdir, tags, args))
            except Exception as exc:  # e.g. PostgreSQL down: report it with the other figures
                results.append(DbResult(kind, problems=[f"{type(exc).__name__}: {exc}"]))
    print_report(args, baseline, results)
    return 1 if "error" in baseline or any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
