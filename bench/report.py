"""The figures table on stdout, with the machine it ran on and the problems met."""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any, Protocol, TypeVar

import psutil

from bench.runs import DbResult
from tests.support.mosquitto import MOSQUITTO

Row = tuple[str, Callable[[DbResult], str]]
DATABASES = ("postgresql", "sqlite")
R = TypeVar("R")


class Named(Protocol):
    name: str
    problems: list[str]


def database_kinds(text: str, parser: argparse.ArgumentParser) -> list[str]:
    """`--databases a,b`: the kinds named, or the parser's error naming the unknown ones."""
    kinds = [d.strip() for d in text.split(",") if d.strip()]
    unknown = sorted(set(kinds) - set(DATABASES))
    if unknown or not kinds:
        parser.error(f"--databases: unknown {unknown}, choose from {', '.join(DATABASES)}")
    return kinds


def print_table(rows: Sequence[tuple[str, Callable[[R], str]]], results: Sequence[R], names: Sequence[str]) -> None:
    """One column per result, headed by its name; labels and cells as wide as they need."""
    label_w = max(len(label) for label, _ in rows) + 2
    cells = [[get(r) for r in results] for _, get in rows]
    col_w = max(len(c) for c in [*names, *(c for row in cells for c in row)]) + 2
    print(f"{'':{label_w}}" + "".join(f"{n:>{col_w}}" for n in names))
    for (label, _), row in zip(rows, cells, strict=True):
        print(f"{label:{label_w}}" + "".join(f"{c:>{col_w}}" for c in row))


def print_problems_of(results: Iterable[Named]) -> None:
    for r in results:
        for problem in r.problems:
            print(f"PROBLEM {r.name}: {problem}")


def fmt(value: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def machine_line() -> str:
    try:
        mosq = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, timeout=5).stdout
        mosq_version = mosq.splitlines()[0].strip() if mosq else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        mosq_version = "unknown"
    mem = psutil.virtual_memory().total / 1024**3
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} CPUs, {mem:.1f} GiB RAM, {platform.platform()}, load average {load}\n"
        f"software: Python {platform.python_version()}, {mosq_version}, "
        f"paho-mqtt {metadata.version('paho-mqtt')}, SQLAlchemy {metadata.version('sqlalchemy')}"
    )


def table_rows(taps: int, base: float) -> list[Row]:
    """(label, cell) per row of the table; `base` is the baseline's msg/s."""
    return [
        ("database", lambda r: r.version),
        ("committed taps/s", lambda r: fmt(r.commit_rate)),
        ("  committed / sent", lambda r: f"{r.committed:,} / {taps:,}"),
        ("  seconds to commit all", lambda r: fmt(r.commit_s, 1)),
        ("  publisher rate (msg/s)", lambda r: fmt(r.publish_rate)),
        ("  reader acks (refused)", lambda r: f"{r.acks:,} ({r.refused:,})"),
        ("  taps/s by last ack", lambda r: fmt(r.ack_rate)),
        ("gateway / baseline (%)", lambda r: fmt(100 * r.commit_rate / base, 1)),
        *(
            (f"  CPU {name} (% of a core)", lambda r, n=name: fmt(r.cpu_pct.get(n, math.nan)))
            for name in ("gateway", "broker", "postgres", "bench", "machine")
        ),
        ("offered rate achieved (taps/s)", lambda r: fmt(r.offered_rate)),
        ("  acked / offered", lambda r: f"{r.lat_acked:,} / {r.offered:,}"),
        ("latency p50 (ms)", lambda r: fmt(r.p50_ms, 1)),
        ("latency p99 (ms)", lambda r: fmt(r.p99_ms, 1)),
        ("latency max (ms)", lambda r: fmt(r.max_ms, 1)),
        ("gateway RSS ready → peak (MB)", lambda r: f"{fmt(r.rss_start_mb, 1)} → {fmt(r.rss_peak_mb, 1)}"),
        ("gateway log warnings/errors", lambda r: f"{r.log_issues.total():,}"),
    ]


def print_log_issues(results: Iterable[Any], most: int = 5) -> None:
    """The gateway log's commonest warnings and errors of each run (`r.log_issues`, a Counter)."""
    for r in results:
        for line, times in r.log_issues.most_common(most):
            print(f"gateway log {r.name}: {times:,} × {line[:200]}")


def print_problems(baseline: dict[str, Any], results: list[DbResult]) -> None:
    if "error" in baseline:
        print(f"PROBLEM baseline: {baseline['error']}")
    print_problems_of(results)
    print_log_issues(results, most=8)


def print_report(args: argparse.Namespace, baseline: dict[str, Any], results: list[DbResult]) -> None:
    base = baseline.get("rate", math.nan)
    print()
    print(machine_line())
    print(
        f"throughput runs: {args.taps:,} taps at QoS 1, full speed; latency runs: {args.rate:,} taps/s "
        f"offered for {args.paced_seconds} s"
    )
    print(
        f"baseline (bare paho MQTT 5 subscriber, manual ack, same broker): {fmt(base)} msg/s received "
        f"({baseline.get('received', 0):,} msgs; publisher {fmt(baseline.get('publish_rate', math.nan))} msg/s)"
    )
    print()
    print_table(table_rows(args.taps, base), results, [r.name for r in results])
    print(
        "\nreference targets (not checked): PostgreSQL >= 3,000 taps/s committed, >= 30 % of baseline, "
        "p99 < 250 ms at 1,000 taps/s offered, peak RSS < 300 MB"
    )
    print_problems(baseline, results)
