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
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import queue  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, deque  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from importlib import metadata  # noqa: E402
from typing import Any  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402
import psutil  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from sqlalchemy import Engine, func, select, text  # noqa: E402

from server.cli import DEMO_SITE  # noqa: E402
from server.contract import tap_topic  # noqa: E402
from server.db import make_engine, migrate, session_factory, transaction  # noqa: E402
from server.models import SignIn  # noqa: E402
from server.sitefile.load import load_site  # noqa: E402
from server.sitefile.parse import parse_site_file  # noqa: E402
from tests.support.databases import database  # noqa: E402
from tests.support.mosquitto import MOSQUITTO, MosquittoBroker  # noqa: E402

SITE = "liyuan"
READERS = [f"rdr-h0{i}" for i in range(1, 7)]
ACK_FILTER = "patrol/v1/+/reader/+/ack"
WINDOW = 20_000  # unacked publishes allowed: paho refuses past 65,535 (ERR_QUEUE_SIZE)
CHUNK = 1_000  # when the window is full, wait for this many of the oldest
RECEIVE_MAXIMUM = 2000  # what gateway/mqtt_link.py asks of the broker; the baseline asks the same
# paho's own in-flight cap: 0 = none, the WINDOW above bounds it. paho 2.2 rescans its whole
# outgoing queue on every PUBACK when a cap is set (Client._update_inflight), which at 1,000 halved
# the publisher here (about 7 k msg/s against 14 k) and made the baseline measure the publisher.
PUBLISHER_INFLIGHT = 0
POLL_S = 0.2
MB = 1024 * 1024


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the figures."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def connect(client: mqtt.Client, port: int, timeout_s: float = 10.0, **kwargs: Any) -> None:
    """Connect and wait for the CONNACK, so the first publish or subscribe does not race it."""
    client.connect("127.0.0.1", port, keepalive=60, **kwargs)
    client.loop_start()
    deadline = time.monotonic() + timeout_s
    while not client.is_connected():
        if time.monotonic() > deadline:
            client.loop_stop()
            raise RuntimeError(f"no CONNACK from 127.0.0.1:{port} within {timeout_s}s")
        time.sleep(0.01)


def new_client(name: str, client_id: str | None = None) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id=client_id or f"bench-{name}-{uuid.uuid4().hex[:8]}"
    )


def end_session(client: mqtt.Client) -> None:
    """Disconnect with Session Expiry 0: a persistent session left behind would keep queueing
    every later tap in the broker and slow the runs that follow."""
    props = Properties(PacketTypes.DISCONNECT)
    props.SessionExpiryInterval = 0
    client.disconnect(properties=props)
    client.loop_stop()


def tap_messages(prefix: str, count: int, tags: list[str]) -> Iterator[tuple[str, str, str]]:
    """(id, topic, payload) of unique taps, readers and tags round-robin; lazily made, so `ts`
    is the publish time."""
    topics = [tap_topic(SITE, reader) for reader in READERS]
    for i in range(count):
        msg_id = f"{prefix}{i:07d}"
        payload = f'{{"id":"{msg_id}","ts":{time.time_ns() // 1_000_000},"uid":"{tags[i % len(tags)]}"}}'
        yield msg_id, topics[i % len(topics)], payload


class Publisher:
    """One QoS 1 publisher with a bounded window of unacknowledged messages: past 65,535 paho
    refuses (ERR_QUEUE_SIZE), and an unbounded backlog would measure the bench, not the gateway."""

    def __init__(self, port: int, name: str) -> None:
        self.client = new_client(name)
        self.client.max_inflight_messages_set(PUBLISHER_INFLIGHT)
        self._pending: deque[mqtt.MQTTMessageInfo] = deque()
        connect(self.client, port)

    def publish(self, topic: str, payload: str) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish refused by paho: {mqtt.error_string(info.rc)}")
        self._pending.append(info)
        if len(self._pending) >= WINDOW:
            self._drain(keep=WINDOW - CHUNK)

    def _drain(self, keep: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self._pending) > keep:
            info = self._pending.popleft()
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise RuntimeError(f"broker did not PUBACK within {timeout_s}s ({len(self._pending)} pending)")

    def close(self) -> None:
        """Wait for every PUBACK, then leave."""
        try:
            self._drain(keep=0)
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def publish_all(port: int, name: str, messages: Iterator[tuple[str, str, str]], out: dict[str, Any]) -> None:
    """Publish as fast as the window allows; a thread target, so failures go into `out`."""
    try:
        publisher = Publisher(port, name)
        started = time.monotonic()
        sent = 0
        for _msg_id, topic, payload in messages:
            publisher.publish(topic, payload)
            sent += 1
        publisher.close()
        out["rate"] = sent / max(time.monotonic() - started, 1e-9)
    except Exception as exc:
        out["error"] = f"publisher failed: {type(exc).__name__}: {exc}"
    finally:
        out["done"] = True


# ----------------------------------------------------------------------------- baseline


def baseline_subscriber(port: int, expected: int, timeout_s: float, ready: Any, results: Any) -> None:
    """Child process: what the gateway's MQTT side does minus the gateway (MQTT 5, persistent
    session, manual ack, the same Receive Maximum), acking each message at once and dropping it."""
    client = new_client("baseline-sub")
    client.manual_ack_set(True)
    state = {"n": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()

    def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        c.ack(msg.mid, msg.qos)
        now = time.monotonic()
        if state["n"] == 0:
            state["first"] = now
        state["last"] = now
        state["n"] += 1
        if state["n"] >= expected:
            done.set()

    client.on_connect = lambda c, *_a: c.subscribe("patrol/v1/#", qos=1)
    client.on_subscribe = lambda *_a: ready.set()
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    connect(client, port, clean_start=False, properties=props)
    done.wait(timeout_s)
    end_session(client)
    results.put(state)


def run_baseline(broker: MosquittoBroker, taps: int, tags: list[str], timeout_s: float) -> dict[str, Any]:
    """Publish N taps with nobody but the bare subscriber listening; its receive rate is the
    ceiling a Python QoS 1 consumer has on this machine with this broker."""
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=baseline_subscriber, args=(broker.port, taps, timeout_s, ready, results), daemon=True)
    proc.start()
    try:
        if not ready.wait(30):
            return {"error": "baseline subscriber did not subscribe within 30 s"}
        pub: dict[str, Any] = {}
        publish_all(broker.port, "baseline-pub", tap_messages("bas", taps, tags), pub)
        state = results.get(timeout=timeout_s + 30)
    except queue.Empty:
        return {"error": f"baseline subscriber sent no result within {timeout_s + 30}s"}
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    span = state["last"] - state["first"]
    out = {
        "received": state["n"],
        "rate": (state["n"] - 1) / span if span > 0 else math.nan,
        "publish_rate": pub.get("rate", math.nan),
    }
    if "error" in pub:
        out["error"] = pub["error"]
    elif state["n"] < taps:
        out["error"] = f"baseline subscriber received {state['n']} of {taps} within {timeout_s}s"
    return out


# ----------------------------------------------------------------------------- gateway side


class AckCollector:
    """The reader acks as a reader would see them; the gateway sends one only after the commit.
    Keeps the first receive time per id (a redelivered tap is answered again)."""

    def __init__(self, port: int) -> None:
        self.first_seen: dict[str, float] = {}
        self.by_prefix: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.received = 0
        subscribed = threading.Event()
        self.client = new_client("acks")
        self.client.on_connect = lambda c, *_a: c.subscribe(ACK_FILTER, qos=1)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        connect(self.client, port, clean_start=True)
        if not subscribed.wait(10):
            raise RuntimeError(f"could not subscribe to {ACK_FILTER}")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        self.received += 1
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        msg_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(msg_id, str) and msg_id not in self.first_seen:
            self.first_seen[msg_id] = now
            self.by_prefix[msg_id[:3]] += 1
            if not body.get("ok"):
                self.refused[msg_id[:3]] += 1

    def wait_for(self, prefix: str, count: int, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while self.by_prefix[prefix] < count and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return self.by_prefix[prefix]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class GatewayProcess:
    """`python -m server.cli gateway` as production runs it, logging to a file."""

    def __init__(self, broker: MosquittoBroker, db_url: str, log_path: Path) -> None:
        self.broker, self.db_url, self.log_path = broker, db_url, log_path
        self.client_id = f"bench-gw-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> psutil.Process:
        env = {
            **os.environ,
            "PATROL_MQTT_URL": self.broker.url,
            "PATROL_DATABASE_URL": self.db_url,
            "PATROL_MQTT_CLIENT_ID": self.client_id,
            "PATROL_LOG_LEVEL": "INFO",
        }
        with self.log_path.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "gateway"], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while "subscribed to" not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway not ready (exit code {self.proc.poll()}): {self.log_text()[-1500:]}")
            time.sleep(0.1)
        return psutil.Process(self.proc.pid)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def issues(self) -> Counter[str]:
        """Warning and error lines, counted by text without the timestamp (one may repeat 10^5 times)."""
        marks = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")
        lines = [line for line in self.log_text().splitlines() if any(m in line for m in marks)]
        return Counter(line.split(" ", 2)[-1] if line[:4].isdigit() else line for line in lines)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait (it finishes the batch in hand), then end its broker session, which
        would otherwise outlive it for a week and queue the next database's taps."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        try:
            client = new_client("gw-cleanup", client_id=self.client_id)
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
            connect(client, self.broker.port, clean_start=True, properties=props)
            end_session(client)
        except (OSError, RuntimeError) as exc:
            log(f"could not end the gateway's broker session {self.client_id}: {exc}")
        return rc


class PeakRss(threading.Thread):
    """Samples a process's RSS every 0.1 s: peaks between two samples can be missed."""

    def __init__(self, proc: psutil.Process, max_s: float = 3600.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.proc, self.max_samples = proc, int(max_s / 0.1)
        self.first = self.peak = proc.memory_info().rss
        self.halt = threading.Event()

    def run(self) -> None:
        for _ in range(self.max_samples):
            if self.halt.wait(0.1):
                return
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return


def signin_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(SignIn)).scalar_one())


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass  # a PostgreSQL backend that ended: its time is lost, the figure is a lower bound
    return total


class CpuMeter:
    """Where the machine's CPU went during a run, in % of one core: on a small machine the bench,
    the broker and the database compete with the gateway, and the figures mean little without it."""

    def __init__(self, gateway: psutil.Process, broker: MosquittoBroker) -> None:
        postgres = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
        broker_procs = [psutil.Process(broker.proc.pid)] if broker.proc else []
        self.groups = {"gateway": [gateway], "broker": broker_procs, "postgres": postgres, "bench": [psutil.Process()]}
        self.start = {name: cpu_seconds(procs) for name, procs in self.groups.items()}
        self.machine_start = psutil.cpu_times()
        self.started = time.monotonic()

    def percent(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        out = {name: 100 * (cpu_seconds(procs) - self.start[name]) / wall for name, procs in self.groups.items()}
        end, begin = psutil.cpu_times(), self.machine_start
        busy = sum(end) - end.idle - end.iowait - (sum(begin) - begin.idle - begin.iowait)
        out["machine"] = 100 * busy / wall
        return out


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
        target=publish_all, daemon=True, args=(ctx.broker.port, "thr", tap_messages("thr", n, ctx.tags), pub)
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
    publisher = Publisher(ctx.broker.port, "lat")
    sent: dict[str, float] = {}
    start = time.monotonic()
    for i, (msg_id, topic, payload) in enumerate(tap_messages("lat", total, ctx.tags)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the offered rate, not waiting for an outcome
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
            acks, sampler = AckCollector(broker.port), PeakRss(proc)
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


# ----------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


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
    rows: list[tuple[str, Any]] = [
        ("database", lambda r: r.version),
        ("committed taps/s", lambda r: fmt(r.commit_rate)),
        ("  committed / sent", lambda r: f"{r.committed:,} / {args.taps:,}"),
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
    print()
    print(f"{'':32}" + "".join(f"{r.name:>24}" for r in results))
    for label, get in rows:
        print(f"{label:32}" + "".join(f"{get(r):>24}" for r in results))
    print(
        "\nreference targets (not checked): PostgreSQL >= 3,000 taps/s committed, >= 30 % of baseline, "
        "p99 < 250 ms at 1,000 taps/s offered, peak RSS < 300 MB"
    )
    if "error" in baseline:
        print(f"PROBLEM baseline: {baseline['error']}")
    for r in results:
        for problem in r.problems:
            print(f"PROBLEM {r.name}: {problem}")
        for line, times in r.log_issues.most_common(8):
            print(f"gateway log {r.name}: {times:,} × {line[:200]}")


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
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    unknown = set(args.databases) - {"postgresql", "sqlite"}
    if unknown or args.taps < 2 or args.rate < 1 or args.paced_seconds <= 0:
        p.error(f"bad arguments (unknown databases: {sorted(unknown)})" if unknown else "bad arguments")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tags = [loc.tag for loc in parse_site_file(DEMO_SITE).locations if loc.tag]
    workdir = Path(tempfile.mkdtemp(prefix="patrol-bench-"))
    broker = MosquittoBroker()
    results: list[DbResult] = []
    try:
        broker.start()
        log(f"mosquitto on 127.0.0.1:{broker.port}; baseline: {args.taps} taps")
        baseline = run_baseline(broker, args.taps, tags, timeout_s=args.timeout)
        for kind in args.databases:
            try:
                results.append(run_database(kind, broker, workdir, tags, args))
            except Exception as exc:  # e.g. PostgreSQL down: report it with the other figures
                results.append(DbResult(kind, problems=[f"{type(exc).__name__}: {exc}"]))
    finally:
        broker.cleanup()
        if args.keep:
            log(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_report(args, baseline, results)
    return 1 if "error" in baseline or any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
