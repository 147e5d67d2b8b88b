"""Tap → verdict benchmark: how long a reader waits for its answer at 500 taps/s when every tap is
judged against the guard's round (issue 8's last Done-when line).

On a site with patrol plans the gateway decides each tap under row locks of the guard's staff row and
of the round (gateway/handlers/tap.py → storage/round_taps.py), stores the sign-in and only then answers
on the reader's ack topic. This bench loads the demo site with its plans (rounds every 30 minutes around
the clock), starts the gateway (`python -m app.cli gateway`), waits for its deadline sweeper to generate
the rounds, and has the readers whose holders have a round open now tap that round's checkpoints in
route order. Per tap: publish → the verdict received on `…/reader/{code}/ack`. Beside it, the bare
broker round trip (a probe published and received back on the same broker every 20 ms of the same run)
is the floor under every answer.

Per database (`--databases`, PostgreSQL by default): a private Mosquitto (the shipped rules and the
demo site's accounts, each reader on its own), a fresh database, the gateway subprocess. Bounded in
count (rate × (warmup + seconds) taps) and in time; everything on 127.0.0.1.

Run from the repository root:  .venv/bin/python bench/tap_verdict.py [--rate R] [--seconds S] ...
Figures, not a verdict: exit 0 when the runs completed, 1 when something broke.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `tests.support` is not an installed package
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import queue  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402
from sqlalchemy import Engine, func, select  # noqa: E402

from bench.gateway_process import CpuMeter, GatewayProcess, PeakRss, cpu_seconds  # noqa: E402
from bench.ingest import MB, prepare_database  # noqa: E402
from bench.mqtt_load import (  # noqa: E402
    AckCollector,
    Login,
    Publisher,
    connect,
    device_logins,
    login,
    new_client,
    paced,
)
from bench.progress import log  # noqa: E402
from bench.report import database_kinds, fmt, machine_line, print_log_issues, print_problems_of, print_table  # noqa: E402
from bench.runs import per_database, percentile  # noqa: E402
from core.contract import tap_topic  # noqa: E402
from storage.models import Round as RoundRow  # noqa: E402
from storage.models import RoundPoint, Staff  # noqa: E402
from storage.round_taps import LONGEST_ROUND  # noqa: E402
from storage.sitefile.schema import SiteFile  # noqa: E402
from tests.support.accounts import UNRESTRICTED  # noqa: E402
from tests.support.databases import database  # noqa: E402
from tests.support.mosquitto import MosquittoBroker  # noqa: E402

SITE = "liyuan"
FEW_READERS = 6  # fewer readers with a round open than this is said in the output
ROUNDS_WAIT_S = 120.0  # for the gateway's sweeper to generate the rounds
#: the gateway's flood watch moves a reader past 20 messages a second to its slow lane; 500 taps/s from
#: a handful of readers stand in for many honest ones, so the bench keeps them in the main lane
FLOOD_LIMIT = 100_000
PROBE_TOPIC = "patrol/v1/bench-rtt/reader/probe/ack"  # as bench/alarm_latency.py: no device's, ignored by the gateway
PROBE_EVERY_S = 0.02


@dataclass(frozen=True)
class Walk:
    """A reader whose holder has a round open now, and the tags of that round's checkpoints in route order."""

    reader: str
    guard: str
    round_id: int
    route: str
    closes_at: datetime
    tags: tuple[str, ...]


class Probes:
    """The bare broker round trip: probes published and received back by one client (the unrestricted
    account: the observer's is the ack collector's, and the broker makes the client id the username)."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.sent: dict[str, float] = {}
        self.received: dict[str, float] = {}
        subscribed = threading.Event()
        self.client = new_client("probe")
        self.client.on_connect = lambda c, *_a: c.subscribe(PROBE_TOPIC, qos=1)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        connect(self.client, login(broker, UNRESTRICTED), clean_start=True)
        if not subscribed.wait(10):
            raise RuntimeError(f"could not subscribe to {PROBE_TOPIC}")

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        self.received.setdefault(msg.payload.decode(), time.monotonic())

    def send(self) -> None:
        n = str(len(self.sent))
        self.sent[n] = time.monotonic()
        self.client.publish(PROBE_TOPIC, n, qos=1)

    def round_trips_ms(self, wait_s: float = 5.0) -> list[float]:
        deadline = time.monotonic() + wait_s
        while len(self.received) < len(self.sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        return sorted(1000 * (self.received[n] - t) for n, t in self.sent.items() if n in self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class TapResult:
    name: str
    version: str = "?"
    problems: list[str] = field(default_factory=list)
    rounds: int = 0  # generated by the gateway
    walks: list[Walk] = field(default_factory=list)
    sent: int = 0
    rate: float = math.nan  # offered taps/s achieved
    verdict_ms: list[float] = field(default_factory=list)  # publish → verdict received, sorted
    ok_ms: list[float] = field(default_factory=list)  # the same, ok verdicts only
    verdicts: Counter[str] = field(default_factory=Counter)
    probe_ms: list[float] = field(default_factory=list)  # bare broker round trip, sorted
    probes: int = 0
    cpu_pct: dict[str, float] = field(default_factory=dict)
    rss_start_mb: float = math.nan
    rss_peak_mb: float = math.nan
    exit_code: int | None = None
    log_issues: Counter[str] = field(default_factory=Counter)


def open_walks(engine: Engine, site: SiteFile) -> tuple[int, list[Walk]]:
    """The rounds generated so far, and per reader whose holder has a round open now (starts_at <= now <
    ends_at + grace) the earliest such round (the one a tap at a pending point of it goes to)."""
    now = datetime.now(UTC)
    tag_of = {loc.code: loc.tag for loc in site.locations if loc.tag}
    with engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(RoundRow)).scalar_one())
        staff = dict(conn.execute(select(Staff.code, Staff.id)).all())
        window = (RoundRow.starts_at <= now, RoundRow.starts_at > now - LONGEST_ROUND)
        rows = conn.execute(
            select(
                RoundRow.id, RoundRow.guard_id, RoundRow.route, RoundRow.starts_at, RoundRow.ends_at, RoundRow.grace_s
            )
            .where(*window)
            .order_by(RoundRow.starts_at, RoundRow.id)
        ).all()
        walks: list[Walk] = []
        for device in sorted(site.devices, key=lambda d: d.code):
            guard_id = staff.get(device.holder) if device.holder else None
            closing = [(r, r.ends_at + timedelta(seconds=r.grace_s)) for r in rows if r.guard_id == guard_id]
            open_ = [(r, closes) for r, closes in closing if now < closes]
            if not open_:
                continue
            r, closes = open_[0]
            points = select(RoundPoint.checkpoint).where(RoundPoint.round_id == r.id).order_by(RoundPoint.seq)
            tags = tuple(tag_of[code] for code in conn.execute(points).scalars() if code in tag_of)
            if tags:
                walks.append(Walk(device.code, str(device.holder), r.id, r.route, closes, tags))
    return total, walks


def wait_for_walks(engine: Engine, site: SiteFile) -> tuple[int, list[Walk]]:
    """Poll until rounds exist, their count has stopped growing and some are open now."""
    deadline, last = time.monotonic() + ROUNDS_WAIT_S, -1
    while time.monotonic() < deadline:
        total, walks = open_walks(engine, site)
        if total and total == last and walks:
            return total, walks
        last = total
        time.sleep(1.0)
    raise RuntimeError(f"no open round within {ROUNDS_WAIT_S:g} s ({last} rounds generated)")


def run_database(kind: str, broker: MosquittoBroker, site: SiteFile, workdir: Path, args: Any) -> TapResult:
    res = TapResult(kind)
    (workdir / kind).mkdir()
    with database(kind, workdir / kind) as url:
        engine, res.version = prepare_database(url)  # the demo site with its routes and plans
        gateway = GatewayProcess(
            broker, url, workdir / kind / "gateway.log", {"PATROL_FLOOD_MSGS_PER_S": str(FLOOD_LIMIT)}
        )
        acks: AckCollector | None = None
        probes: Probes | None = None
        sampler: PeakRss | None = None
        try:
            proc = gateway.start()
            sampler = PeakRss(proc)
            sampler.start()
            log(f"{kind}: waiting for the gateway to generate the rounds")
            res.rounds, res.walks = wait_for_walks(engine, site)
            log(f"{kind}: {res.rounds} rounds; open now for {', '.join(w.reader for w in res.walks)}")
            acks, probes = AckCollector(broker), Probes(broker)
            measure(broker, proc, acks, probes, res, args)
        except Exception as exc:
            res.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            if sampler is not None:
                sampler.halt.set()
                sampler.join(5)
                res.rss_start_mb, res.rss_peak_mb = sampler.first / MB, sampler.peak / MB
            for client in (acks, probes):
                if client is not None:
                    client.close()
            res.exit_code = gateway.stop()
            res.log_issues = gateway.issues()
            engine.dispose()
    if res.exit_code != 0:
        res.problems.append(f"gateway exit code after SIGTERM: {res.exit_code}")
    return res


def tap_id(i: int, warm: int) -> str:
    return f"{'wup' if i < warm else 'tap'}{i:07d}"


def publish_taps(
    logins: dict[str, Login], walks: list[Walk], rate: float, warm: int, total: int, events: Any, results: Any
) -> None:
    """Child process (its own interpreter: the pacing and the eight readers' network threads do not
    hold up the threads that time the answers): `warm + total` taps at `rate`/s, each reader tapping its
    round's checkpoints in route order, round-robin over the readers. Sets events[0] at the first
    measured tap and events[1] after the last; reports the measured taps' publish times (monotonic,
    one clock for every process on the machine) by index from `warm`."""
    out: dict[str, Any] = {}
    try:
        publisher = Publisher(logins, "taps")
        topics = [tap_topic(SITE, w.reader) for w in walks]
        for walk in walks:
            publisher.client_for(walk.reader)  # logged in before the clock starts
        sent: list[float] = []
        for i in paced(range(warm + total), rate):
            w, turn = i % len(walks), i // len(walks)
            uid = walks[w].tags[turn % len(walks[w].tags)]
            body = {"id": tap_id(i, warm), "ts": time.time_ns() // 1_000_000, "uid": uid}
            if i == warm:
                events[0].set()
            if i >= warm:
                sent.append(time.monotonic())
            publisher.publish(topics[w], json.dumps(body, separators=(",", ":")))
        events[1].set()
        publisher.close()
        out["sent"] = sent
    except Exception as exc:
        out["error"] = f"tap publisher failed: {type(exc).__name__}: {exc}"
    finally:
        for event in events:
            event.set()
        results.put(out)


def measure(
    broker: MosquittoBroker, gateway: psutil.Process, acks: AckCollector, probes: Probes, res: TapResult, args: Any
) -> None:
    """The taps from a child process; here a broker probe every PROBE_EVERY_S while the measured ones
    go out, and the CPU meter over the same span."""
    warm, total = round(args.rate * args.warmup), max(1, round(args.rate * args.seconds))
    ctx = mp.get_context("spawn")
    events, results = (ctx.Event(), ctx.Event()), ctx.Queue()
    logins = device_logins(broker, [w.reader for w in res.walks])
    child = ctx.Process(
        target=publish_taps, args=(logins, res.walks, args.rate, warm, total, events, results), daemon=True
    )
    log(f"{res.name}: {args.rate:g} taps/s from {len(res.walks)} readers, {args.warmup:g} + {args.seconds:g} s")
    child.start()

    def meter() -> CpuMeter:
        cpu = CpuMeter(gateway, broker)
        cpu.groups["bench"].append(tapper := psutil.Process(child.pid))  # the publisher is the bench too
        cpu.start["bench"] += cpu_seconds([tapper])
        return cpu

    pub, res.cpu_pct = drive_publisher(child, events, results, probes, args.warmup, meter)
    if "error" in pub:
        res.problems.append(pub["error"])
    sent = {tap_id(warm + k, warm): t for k, t in enumerate(pub.get("sent", []))}
    res.sent, res.probes = len(sent), len(probes.sent)
    res.rate = (len(sent) - 1) / (max(sent.values()) - min(sent.values())) if len(sent) > 1 else math.nan
    answered = acks.wait_for("tap", len(sent), args.timeout)
    got = {i: 1000 * (acks.first_seen[i] - t) for i, t in sent.items() if i in acks.first_seen}
    res.verdict_ms = sorted(got.values())
    res.ok_ms = sorted(ms for i, ms in got.items() if acks.verdicts[i] == "ok")
    res.verdicts = Counter(acks.verdicts[i] for i in got)
    res.probe_ms = probes.round_trips_ms()
    if answered < len(sent):
        res.problems.append(f"{answered} of {len(sent)} taps answered within {args.timeout:g} s of the last publish")


def print_report(args: Any, results: list[TapResult]) -> None:
    def p(values: list[float], qs: tuple[float, ...] = (0.5, 0.99, 1.0)) -> str:
        return " / ".join(fmt(percentile(values, q), 1) for q in qs)

    print()
    print(machine_line())
    print(
        f"tap → verdict: {args.rate:g} taps/s (QoS 1) for {args.seconds:g} s after {args.warmup:g} s of warm-up, "
        "on the demo site with its patrol plans; each reader whose holder has a round open taps that round's "
        "checkpoints in route order"
    )
    print(
        "most taps are refused (duplicate, too_fast, out_of_order, outside_window): each is still judged against "
        "the round under the guard's and the round's row locks, as an ok one is"
    )
    print(f"the gateway's flood limit is raised to {FLOOD_LIMIT:,}/s so the readers stay in its main lane")
    for r in results:
        if r.walks:
            print(f"{r.name}: " + "; ".join(f"{w.reader} ({w.guard}, round {w.round_id} {w.route})" for w in r.walks))
        if 0 < len(r.walks) < FEW_READERS:
            print(f"{r.name}: only {len(r.walks)} readers' holders have a round open now (fewer than {FEW_READERS})")
        closing = [w.reader for w in r.walks if w.closes_at < datetime.now(UTC)]
        if closing:
            print(f"{r.name}: the rounds of {', '.join(closing)} shut during the run (later taps: another round)")
    print()
    reasons = sorted({v for r in results for v in r.verdicts}, key=lambda v: (v != "ok", v))
    rows: list[tuple[str, Callable[[TapResult], str]]] = [
        ("database", lambda r: r.version),
        ("rounds generated / readers with a round open", lambda r: f"{r.rounds:,} / {len(r.walks)}"),
        ("checkpoint tags tapped", lambda r: f"{len({t for w in r.walks for t in w.tags})}"),
        ("offered taps/s achieved", lambda r: f"{fmt(r.rate)} ({r.sent:,} sent)"),
        ("  answered / sent", lambda r: f"{len(r.verdict_ms):,} / {r.sent:,}"),
        ("tap → verdict received (ms) p50/p99/max", lambda r: p(r.verdict_ms)),
        ("  ok verdicts only (ms) p50/p99/max", lambda r: p(r.ok_ms)),
        *((f"  verdict {v}", lambda r, v=v: f"{r.verdicts[v]:,}") for v in reasons),
        ("bare broker round trip (ms) p50/p99/max", lambda r: p(r.probe_ms)),
        ("  probes received / sent", lambda r: f"{len(r.probe_ms):,} / {r.probes:,}"),
        *(
            (f"CPU {name} (% of a core)", lambda r, n=name: fmt(r.cpu_pct.get(n, math.nan)))
            for name in ("gateway", "postgres", "broker", "bench", "machine")
        ),
        ("gateway RSS ready → peak (MB)", lambda r: f"{fmt(r.rss_start_mb, 1)} → {fmt(r.rss_peak_mb, 1)}"),
        ("gateway log warnings/errors", lambda r: f"{r.log_issues.total():,}"),
    ]
    print_table(rows, results, [r.name for r in results])
    print("\nreference target (not checked): tap → verdict p99 < 50 ms")
    print_problems_of(results)
    print_log_issues(results)


def drive_publisher(
    child: Any, events: tuple[Any, Any], results: Any, probes: Probes, warmup: float, meter: Callable[[], CpuMeter]
) -> tuple[dict[str, Any], dict[str, float]]:
    """While a started publisher child sends its measured messages (between its two events), a broker
    probe every PROBE_EVERY_S and the CPU meter (`meter()` starts it) over the same span; then its report
    (`{"error": …}` when it sent none) and the CPU figures. The child is joined, or killed, either way."""
    cpu_pct: dict[str, float] = {}
    try:
        if not events[0].wait(60 + warmup):
            raise RuntimeError("the tap publisher did not reach the measured taps")
        cpu = meter()
        while not events[1].wait(PROBE_EVERY_S):
            probes.send()
        cpu_pct = cpu.percent()
        pub: dict[str, Any] = results.get(timeout=120)
    except queue.Empty:
        pub = {"error": "the tap publisher reported nothing"}
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    return pub, cpu_pct


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=500.0, help="offered taps/s (default 500, at most 5000)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds (default 20, at most 600)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of taps before the measured ones (default 3)")
    p.add_argument("--databases", default="postgresql", help="comma-separated: postgresql,sqlite (default postgresql)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the last answer (default 30)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (gateway log, SQLite file)")
    args = p.parse_args(argv)
    args.databases = database_kinds(args.databases, p)
    if not 0 < args.rate <= 5000 or not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60 or args.timeout <= 0:
        p.error("bad arguments")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = per_database(
        "patrol-tap-verdict-",
        args,
        lambda kind, broker, site, workdir: [run_database(kind, broker, site, workdir, args)],
        lambda kind, why: TapResult(kind, problems=[why]),
    )
    print_report(args, results)
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
