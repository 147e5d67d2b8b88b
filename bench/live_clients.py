"""Live-feed fan-out benchmark: 50 control-room screens on the live feed while 2,000 messages a second flow.

Why it exists (issue 9): a control room has many screens open on WebSocket /api/v1/live, and each
event the gateway publishes is sent by the `patrol api` process to every one of them. This measures
what that costs and how late the events arrive: per (client, event) pair, publish → the event received
in the WebSocket client (p50/p99/max), the events each client got per second, the pairs that never
arrived (and how many of them the server says it dropped for a slow client), and the CPU and RSS of the
API process and the gateway's CPU over the same seconds. Beside them, in the same run and on the same
processes: the same load with one client, publish → the gateway's out/ event on the broker (what the API
receives, before the fan-out), and the bare broker round trip (probes on the same broker), the floor.

Per database (`--databases`): a private Mosquitto (shipped rules, the demo site's accounts, each reader
on its own), a fresh database with the demo site and a control-room login, the gateway (`python -m
app.cli gateway`) and the API (`python -m app.cli api`) as subprocesses. Then two runs: 1 client, then
`--clients` (both on `/api/v1/live?site=liyuan`, from `--client-processes` child processes on asyncio,
`websockets`). A child process publishes taps (QoS 1) from the demo site's 21 readers, round-robin, at
`--rate`/s: `--warmup` s unmeasured, then `--seconds` s measured. Each tap names a tag nobody registered,
unique per tap, so each becomes one refused (`unknown_tag`) sign-in and one `signin` event on the live
feed, and its uid carries the tap's number and its publish time, so every client matches its events
without a word to the others. Bounded in count (rate × (warmup + seconds) taps per run, clients ≤ 500)
and in time (`--timeout`); everything on 127.0.0.1.

Run from the repository root:  .venv/bin/python bench/live_clients.py [--clients N] [--rate R] ...
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
import re  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from array import array  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import httpx2  # noqa: E402
import psutil  # noqa: E402

from bench.alarm_latency import ApiProcess, prepare  # noqa: E402
from bench.api_load import PASSWORD, USER  # noqa: E402
from bench.gateway_process import CpuMeter, GatewayProcess, PeakRss, cpu_seconds  # noqa: E402
from bench.ingest import MB  # noqa: E402
from bench.live_feed_clients import client_process, tap_uid, uid_latency_ms  # noqa: E402
from bench.mqtt_load import Login, Publisher, connect, device_logins, login, new_client, paced  # noqa: E402
from bench.progress import log  # noqa: E402
from bench.report import database_kinds, fmt, machine_line, print_log_issues, print_problems_of, print_table  # noqa: E402
from bench.runs import per_database, percentile  # noqa: E402
from bench.tap_verdict import Probes, drive_publisher  # noqa: E402
from core.contract import tap_topic  # noqa: E402
from core.directory import READER_KINDS  # noqa: E402
from storage.sitefile.schema import SiteFile  # noqa: E402
from tests.support.accounts import OBSERVER  # noqa: E402
from tests.support.databases import database  # noqa: E402
from tests.support.mosquitto import MosquittoBroker  # noqa: E402

SITE = "liyuan"
#: 2,000 taps/s from 21 readers is ~95 a second each, which the gateway's flood watch (20 a second) would
#: move to its slow lane; they stand in for many honest readers, so they stay in the main lane (as in tap_verdict)
FLOOD_LIMIT = 100_000
QUIET_S = 3.0  # once the gateway has published every event, stop waiting after this long without a new receipt
OUT_UID = re.compile(rb'"tag_uid":"([0-9A-F]{20})"')
DROPPED = re.compile(r"^patrol_live_events_dropped_total (\S+)$", re.MULTILINE)


def publish_taps(
    logins: dict[str, Login], run: str, rate: float, warm: int, total: int, events: Any, results: Any
) -> None:
    """Child process: `warm + total` taps at `rate`/s, round-robin over the readers, each with a uid of
    its own (`tap_uid`). Sets events[0] at the first measured tap and events[1] after the last one."""
    out: dict[str, Any] = {}
    try:
        publisher = Publisher(logins, f"live{run}")
        readers = sorted(logins)
        topics = [tap_topic(SITE, r) for r in readers]
        for reader in readers:
            publisher.client_for(reader)  # logged in before the clock starts
        first = last = math.nan
        for i in paced(range(warm + total), rate):
            measured = i >= warm
            if i == warm:
                events[0].set()
                first = time.monotonic()
            body = {
                "id": f"lv{run}{i:07d}",
                "ts": time.time_ns() // 1_000_000,
                "uid": tap_uid(run, measured, i - warm if measured else i),
            }
            publisher.publish(topics[i % len(topics)], json.dumps(body, separators=(",", ":")))
            last = time.monotonic()
        events[1].set()
        publisher.close()
        out.update(sent=total, rate=(total - 1) / (last - first) if total > 1 else math.nan, span=last - first)
    except Exception as exc:
        out["error"] = f"tap publisher failed: {type(exc).__name__}: {exc}"
    finally:
        for event in events:
            event.set()
        results.put(out)


# ----------------------------------------------------------------------------- the bench's own process


class OutSignins:
    """The gateway's out/signins batches as the API's subscriber gets them (the observer's account):
    publish → the event on the broker, before any fan-out."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._lock = threading.Lock()
        self.begin("-", 0)
        topic = f"patrol/v1/{SITE}/out/signins"
        subscribed = threading.Event()
        self.client = new_client("live-out")
        self.client.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        connect(self.client, login(broker, OBSERVER), clean_start=True)
        if not subscribed.wait(10):
            raise RuntimeError(f"could not subscribe to {topic}")

    def begin(self, run: str, total: int) -> None:
        with self._lock:
            self.run, self.seen, self.ms = run, bytearray(total), array("d")

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now_us = time.monotonic_ns() // 1000
        with self._lock:
            for m in OUT_UID.finditer(msg.payload):
                uid = m.group(1).decode()
                if uid[0] != self.run or uid[1] != "1" or (n := int(uid[2:8], 16)) >= len(self.seen):
                    continue
                if not self.seen[n]:
                    self.seen[n] = 1
                    self.ms.append(uid_latency_ms(uid, now_us))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Stack:
    """What both runs of one database share."""

    broker: MosquittoBroker
    readers: dict[str, Login]
    api: ApiProcess
    api_proc: psutil.Process
    gateway_proc: psutil.Process
    token: str
    out: OutSignins


@dataclass
class RunResult:
    name: str
    clients: int
    version: str = "?"
    problems: list[str] = field(default_factory=list)
    opened: int = 0
    sent: int = 0
    rate: float = math.nan  # offered taps/s achieved
    live_ms: list[float] = field(default_factory=list)  # publish → client, every (client, event) pair, sorted
    per_client_rate: list[float] = field(default_factory=list)  # measured events received ÷ measured seconds
    warm_sent: int = 0
    warm: int = 0  # (client, warm-up event) pairs received
    dups: int = 0
    missed_by_all: int = 0  # measured events no client got
    server_dropped: float = math.nan  # patrol_live_events_dropped_total, during this run
    out_ms: list[float] = field(default_factory=list)  # publish → out/signins on the broker, sorted
    probe_ms: list[float] = field(default_factory=list)
    probes: int = 0
    cpu_pct: dict[str, float] = field(default_factory=dict)
    api_rss_start_mb: float = math.nan
    api_rss_peak_mb: float = math.nan
    log_issues: Counter[str] = field(default_factory=Counter)  # gateway's, per database
    api_issues: Counter[str] = field(default_factory=Counter)

    @property
    def expected(self) -> int:
        return self.sent * self.opened


def dropped_total(stack: Stack) -> float:
    """The API's count of live events a slow client never got (GET /metrics, the control room's token)."""
    try:
        got = httpx2.get(f"{stack.api.base}/metrics", headers={"Authorization": f"Bearer {stack.token}"}, timeout=10)
        m = DROPPED.search(got.text) if got.status_code == 200 else None
        return float(m.group(1)) if m else math.nan
    except httpx2.HTTPError:
        return math.nan


def live_run(stack: Stack, res: RunResult, run: str, args: Any) -> None:
    """`res.clients` clients on the live feed, then the taps; waits for the last events, then tallies."""
    warm, total = round(args.rate * args.warmup), max(2, round(args.rate * args.seconds))
    groups = [len(range(k, res.clients, args.client_processes)) for k in range(min(args.client_processes, res.clients))]
    ctx = mp.get_context("spawn")
    halt, results = ctx.Event(), ctx.Queue()
    progress, opened = ctx.Array("q", len(groups), lock=False), ctx.Array("q", len(groups), lock=False)
    url = f"ws://127.0.0.1:{stack.api.api_port}/api/v1/live?site={SITE}"
    max_s = 120 + args.warmup + args.seconds + args.timeout
    procs: list[Any] = []
    for slot, n in enumerate(groups):
        shared = {
            "slot": slot,
            "progress": progress,
            "opened": opened,
            "halt": halt,
            "ready": ctx.Event(),
            "max_s": max_s,
        }
        proc = ctx.Process(target=client_process, args=(url, stack.token, n, run, total, shared, results), daemon=True)
        proc.start()
        procs.append((proc, shared["ready"]))
    stack.out.begin(run, total)
    dropped_before = dropped_total(stack)
    sampler = PeakRss(stack.api_proc)
    sampler.start()
    tallies: list[dict[str, Any]] = []
    pub: dict[str, Any] = {}
    try:
        for _proc, ready in procs:
            if not ready.wait(60):
                raise RuntimeError("the live clients did not open within 60 s")
        res.opened = sum(opened)
        if res.opened < res.clients:
            res.problems.append(f"only {res.opened} of {res.clients} clients got the live feed's hello")
        log(
            f"{res.name}: {res.opened} clients on the live feed; "
            f"{args.rate:g} taps/s, {args.warmup:g} + {args.seconds:g} s"
        )
        clients = [psutil.Process(proc.pid) for proc, _ready in procs]
        pub = publish_and_wait(stack, res, run, (warm, total), (progress, clients), args)
    finally:
        halt.set()
        for _ in procs:
            try:
                tallies.append(results.get(timeout=60))
            except queue.Empty:
                res.problems.append("a live-client process reported nothing")
        for proc, _ready in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        sampler.halt.set()
        sampler.join(5)
        res.api_rss_start_mb, res.api_rss_peak_mb = sampler.first / MB, sampler.peak / MB
    res.server_dropped = dropped_total(stack) - dropped_before
    res.warm_sent = warm if res.sent else 0
    tally(res, tallies, total, pub.get("span", math.nan))
    with stack.out._lock:
        res.out_ms = sorted(stack.out.ms)
    if len(res.out_ms) < res.sent:
        res.problems.append(f"out/: {len(res.out_ms)} of {res.sent} sign-in events within {args.timeout:g} s")


def publish_and_wait(
    stack: Stack,
    res: RunResult,
    run: str,
    counts: tuple[int, int],
    clients: tuple[Any, list[psutil.Process]],
    args: Any,
) -> dict[str, Any]:
    """The taps from a child process; here a broker probe every PROBE_EVERY_S while the measured ones go
    out and the CPU meter over the same span (the bench: this process, the publisher and the client
    processes); then wait for the clients to get the last events. `counts`: warm-up and measured taps;
    `clients`: their shared progress counters and their processes."""
    (warm, total), (progress, client_procs) = counts, clients
    ctx = mp.get_context("spawn")
    events, results = (ctx.Event(), ctx.Event()), ctx.Queue()
    child = ctx.Process(
        target=publish_taps, args=(stack.readers, run, args.rate, warm, total, events, results), daemon=True
    )
    child.start()
    probes = Probes(stack.broker)

    def meter() -> CpuMeter:
        cpu = CpuMeter(stack.gateway_proc, stack.broker)
        for name, procs in (("api", [stack.api_proc]), ("bench", [psutil.Process(child.pid), *client_procs])):
            cpu.groups.setdefault(name, []).extend(procs)
            cpu.start[name] = cpu_seconds(cpu.groups[name])
        return cpu

    try:
        pub, res.cpu_pct = drive_publisher(child, events, results, probes, args.warmup, meter)
    finally:
        res.probe_ms, res.probes = probes.round_trips_ms(), len(probes.sent)
        probes.close()
    res.sent, res.rate = pub.get("sent", 0), pub.get("rate", math.nan)
    if "error" in pub:
        res.problems.append(pub["error"])
        return pub
    deadline, expected = time.monotonic() + args.timeout, res.sent * res.opened
    last, changed = -1, time.monotonic()
    while time.monotonic() < deadline:
        got, now = sum(progress), time.monotonic()
        all_out = len(stack.out.ms) >= res.sent
        if all_out and got >= expected:
            break
        if got != last:
            last, changed = got, now
        elif all_out and now - changed > QUIET_S:
            break  # what has not come by now was dropped
        time.sleep(0.1)
    return pub


def tally(res: RunResult, tallies: list[dict[str, Any]], total: int, span: float) -> None:
    latencies: list[float] = []
    anyone = 0  # bit 8k of this is the k-th measured tap's byte: 1 when some client got its event
    for proc in tallies:
        if "error" in proc:
            res.problems.append(proc["error"])
        for c in proc.get("clients", []):
            if c["error"]:
                res.problems.append(c["error"])
            lat = array("d")
            lat.frombytes(c["lat"])
            latencies.extend(lat)
            res.per_client_rate.append(len(lat) / span if span > 0 else math.nan)
            res.warm += c["warm"]
            res.dups += c["dups"]
            anyone |= int.from_bytes(c["seen"], "big")
    res.live_ms = sorted(latencies)
    res.per_client_rate.sort()
    res.missed_by_all = total - anyone.bit_count() if res.opened else 0
    errors = Counter(p for p in res.problems)  # 50 clients closed alike: one line with a count
    res.problems = [f"{p} (× {n})" if n > 1 else p for p, n in errors.items()]


def run_database(kind: str, broker: MosquittoBroker, site: SiteFile, workdir: Path, args: Any) -> list[RunResult]:
    runs = [RunResult(f"{kind} ×1", 1), RunResult(f"{kind} ×{args.clients}", args.clients)]
    (workdir / kind).mkdir()
    with database(kind, workdir / kind) as url:
        engine, version = prepare(url, site)
        engine.dispose()
        for r in runs:
            r.version = version
        gateway = GatewayProcess(
            broker, url, workdir / kind / "gateway.log", {"PATROL_FLOOD_MSGS_PER_S": str(FLOOD_LIMIT)}
        )
        api = ApiProcess(broker, url, workdir / kind / "api.log", {})
        out: OutSignins | None = None
        exit_code: int | None = None
        try:
            gateway_proc = gateway.start()
            api_proc = api.start()
            token = httpx2.post(
                f"{api.base}/api/v1/auth/token", json={"username": USER, "password": PASSWORD}, timeout=10
            )
            token.raise_for_status()
            out = OutSignins(broker)
            readers = device_logins(broker, sorted(d.code for d in site.devices if d.kind in READER_KINDS))
            stack = Stack(broker, readers, api, api_proc, gateway_proc, token.json()["access_token"], out)
            for n, r in enumerate(runs, start=1):
                try:
                    live_run(stack, r, str(n), args)
                except Exception as exc:
                    r.problems.append(f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            runs[-1].problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            if out is not None:
                out.close()
            api.stop()
            exit_code = gateway.stop()
        for r in runs:
            r.log_issues, r.api_issues = gateway.issues(), api.issues()
    if exit_code != 0:
        runs[-1].problems.append(f"gateway exit code after SIGTERM: {exit_code}")
    return runs


def print_report(args: Any, results: list[RunResult]) -> None:
    def p(values: list[float], qs: tuple[float, ...] = (0.5, 0.99, 1.0)) -> str:
        return " / ".join(fmt(percentile(values, q), 1) for q in qs)

    def lost_all(r: RunResult) -> int:
        return r.expected - len(r.live_ms) + r.warm_sent * r.opened - r.warm

    def spread(values: list[float]) -> str:
        return " / ".join(fmt(v) for v in (values[0], statistics.median(values), values[-1])) if values else "n/a"

    print()
    print(machine_line())
    print(
        f"live feed fan-out: 1 and then {args.clients} WebSocket clients (control room, /api/v1/live?site={SITE}, "
        f"{args.client_processes} client processes) while {args.rate:g} taps/s (QoS 1) flow for {args.seconds:g} s "
        f"after {args.warmup:g} s of warm-up, from the demo site's 21 readers"
    )
    print(
        "each tap names an unregistered tag of its own: one refused (unknown_tag) sign-in and one `signin` event "
        f"per tap; the gateway's flood limit is raised to {FLOOD_LIMIT:,}/s so the readers stay in its main lane"
    )
    print()
    rows: list[tuple[str, Callable[[RunResult], str]]] = [
        ("database", lambda r: r.version),
        ("clients on the live feed", lambda r: f"{r.opened} / {r.clients}"),
        ("offered taps/s achieved", lambda r: f"{fmt(r.rate)} ({r.sent:,} sent)"),
        ("publish → out/ event on the broker (ms) p50/p99/max", lambda r: p(r.out_ms)),
        ("  out/ events / taps sent", lambda r: f"{len(r.out_ms):,} / {r.sent:,}"),
        ("publish → event in the client (ms) p50/p99/max", lambda r: p(r.live_ms)),
        ("  received / expected (client, event)", lambda r: f"{len(r.live_ms):,} / {r.expected:,}"),
        ("  events/s per client min/median/max", lambda r: spread(r.per_client_rate)),
        ("  lost pairs measured / with warm-up", lambda r: f"{r.expected - len(r.live_ms):,} / {lost_all(r):,}"),
        ("  server dropped (with warm-up)", lambda r: fmt(r.server_dropped)),
        ("  events no client got", lambda r: f"{r.missed_by_all:,}"),
        ("  duplicates", lambda r: f"{r.dups:,}"),
        ("bare broker round trip (ms) p50/p99/max", lambda r: p(r.probe_ms)),
        ("  probes received / sent", lambda r: f"{len(r.probe_ms):,} / {r.probes:,}"),
        *(
            (f"CPU {name} (% of a core)", lambda r, n=name: fmt(r.cpu_pct.get(n, math.nan)))
            for name in ("api", "gateway", "broker", "postgres", "bench", "machine")
        ),
        ("API RSS start → peak (MB)", lambda r: f"{fmt(r.api_rss_start_mb, 1)} → {fmt(r.api_rss_peak_mb, 1)}"),
        ("gateway / API log warnings+errors", lambda r: f"{r.log_issues.total():,} / {r.api_issues.total():,}"),
    ]
    print_table(rows, results, [r.name for r in results])
    print(f"\nreference target (not checked): {args.clients} clients, publish → event in the client p99 < 500 ms")
    print_problems_of(results)
    last = {r.version: r for r in results}.values()  # the logs are per database, not per run
    print_log_issues(last)
    for r in last:
        for line, times in r.api_issues.most_common(5):
            print(f"api log {r.name}: {times:,} × {line[:200]}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--clients", type=int, default=50, help="live-feed clients in the main run (default 50, at most 500)"
    )
    p.add_argument("--client-processes", type=int, default=2, help="processes the clients run in (default 2)")
    p.add_argument("--rate", type=float, default=2000.0, help="offered taps/s (default 2000, at most 10000)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run (default 20, at most 600)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of taps before the measured ones (default 3)")
    p.add_argument("--databases", default="postgresql,sqlite", help="comma-separated: postgresql,sqlite")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the last event (default 30)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (gateway and API logs, SQLite file)")
    args = p.parse_args(argv)
    args.databases = database_kinds(args.databases, p)
    if (
        not 1 <= args.clients <= 500
        or not 1 <= args.client_processes <= 16
        or not 0 < args.rate <= 10_000
        or not 0 < args.seconds <= 600
        or not 0 <= args.warmup <= 60
        or args.timeout <= 0
    ):
        p.error("bad arguments")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = per_database(
        "patrol-live-clients-",
        args,
        lambda kind, broker, site, workdir: run_database(kind, broker, site, workdir, args),
        lambda kind, why: RunResult(kind, args.clients, problems=[why]),
    )
    print_report(args, results)
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
