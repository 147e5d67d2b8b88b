"""The two runs against one database behind the gateway: throughput at full speed, latency at a paced rate."""

from __future__ import annotations

import argparse
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
from sqlalchemy import Engine, func, select

from app.cli import DEMO_SITE
from bench.gateway_process import CpuMeter
from bench.mqtt_load import (
    POLL_S,
    AckCollector,
    Publisher,
    device_logins,
    paced,
    publish_all,
    running_broker,
    tap_messages,
)
from bench.progress import work_dir
from storage.models import SignIn
from storage.sitefile.parse import parse_site_file
from storage.sitefile.schema import SiteFile
from tests.support.mosquitto import MosquittoBroker

R = TypeVar("R")


@dataclass
class DbResult:
    name: str
    version: str = "?"
    problems: list[str] = field(default_factory=list)
    committed: int = 0
    commit_s: float = math.nan
    commit_rate: float = math.nan
    publish_rate: float = math.nan
    acks: int = 0
    refused: int = 0
    ack_rate: float = math.nan
    cpu_pct: dict[str, float] = field(default_factory=dict)
    offered: int = 0
    offered_rate: float = math.nan
    lat_acked: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    rss_start_mb: float = math.nan
    rss_peak_mb: float = math.nan
    exit_code: int | None = None
    log_issues: Counter[str] = field(default_factory=Counter)


@dataclass
class Context:
    """What every run of one database needs."""

    broker: MosquittoBroker
    engine: Engine
    acks: AckCollector
    gateway: psutil.Process
    tags: list[str]
    args: argparse.Namespace
    res: DbResult


def signin_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(SignIn)).scalar_one())


def wait_for_commits(ctx: Context, target: int, pub: dict[str, Any], started: float) -> float | None:
    """Poll the sign_ins count; the time it reached `target`, or None on timeout or a stall
    (no progress for 60 s after the publisher finished)."""
    deadline = started + ctx.args.timeout
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = signin_count(ctx.engine)
        now = time.monotonic()
        ctx.res.committed = count
        if count >= target:
            return now
        if count != last_count:
            last_count, last_change = count, now
        elif pub.get("done") and now - last_change > 60:
            ctx.res.problems.append(f"commits stalled at {count} of {target} for 60 s")
            return None
        time.sleep(POLL_S)
    ctx.res.problems.append(f"timeout after {ctx.args.timeout}s: {ctx.res.committed} of {target} committed")
    return None


def throughput_run(ctx: Context) -> bool:
    """N taps at full speed; committed taps/s from the first publish to sign_ins == N.
    True when all N were committed (missing acks are reported but do not stop the latency run)."""
    n, res = ctx.args.taps, ctx.res
    cpu = CpuMeter(ctx.gateway, ctx.broker)
    pub: dict[str, Any] = {}
    started = time.monotonic()
    thread = threading.Thread(
        target=publish_all, daemon=True, args=(device_logins(ctx.broker), "thr", tap_messages("thr", n, ctx.tags), pub)
    )
    thread.start()
    reached = wait_for_commits(ctx, n, pub, started)
    res.cpu_pct = cpu.percent()
    thread.join(max(0.0, started + ctx.args.timeout - time.monotonic()))
    res.publish_rate = pub.get("rate", math.nan)
    if "error" in pub:
        res.problems.append(pub["error"])
    if reached is None:
        return False
    res.commit_s = reached - started
    res.commit_rate = n / res.commit_s
    res.acks = ctx.acks.wait_for("thr", n, timeout_s=60)
    res.refused = ctx.acks.refused["thr"]
    last_ack = max((t for i, t in ctx.acks.first_seen.items() if i.startswith("thr")), default=math.nan)
    res.ack_rate = res.acks / (last_ack - started)
    if res.acks < n:
        res.problems.append(f"only {res.acks} of {n} reader acks arrived within 60 s of the last commit")
    return True


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below it."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def latency_run(ctx: Context) -> None:
    """Taps at a paced rate; publish → reader-ack time per id (an upper bound of publish → commit)."""
    rate, res = ctx.args.rate, ctx.res
    total = max(2, round(rate * ctx.args.paced_seconds))
    publisher = Publisher(device_logins(ctx.broker), "lat")
    sent: dict[str, float] = {}
    for msg_id, topic, payload in paced(tap_messages("lat", total, ctx.tags), rate):
        sent[msg_id] = time.monotonic()
        publisher.publish(topic, payload)
    publisher.close()
    res.offered = total
    res.offered_rate = (total - 1) / (max(sent.values()) - min(sent.values()))
    res.lat_acked = ctx.acks.wait_for("lat", total, timeout_s=60)
    latencies = sorted(1000 * (ctx.acks.first_seen[i] - t) for i, t in sent.items() if i in ctx.acks.first_seen)
    res.p50_ms, res.p99_ms = percentile(latencies, 0.50), percentile(latencies, 0.99)
    res.max_ms = latencies[-1] if latencies else math.nan
    if res.lat_acked < total:
        res.problems.append(f"latency run: {res.lat_acked} of {total} acks within 60 s of the last publish")


def per_database(
    prefix: str,
    args: argparse.Namespace,
    run: Callable[[str, MosquittoBroker, SiteFile, Path], list[R]],
    failed: Callable[[str, str], R],
) -> list[R]:
    """Each of `args.databases` in turn on one private Mosquitto with the demo site's accounts; a database
    that cannot be run (PostgreSQL down) is reported with the other figures through `failed(kind, why)`."""
    site = parse_site_file(DEMO_SITE)
    results: list[R] = []
    with work_dir(prefix, args.keep) as workdir, running_broker(site) as broker:
        for kind in args.databases:
            try:
                results.extend(run(kind, broker, site, workdir))
            except Exception as exc:
                results.append(failed(kind, f"{type(exc).__name__}: {exc}"))
    return results
