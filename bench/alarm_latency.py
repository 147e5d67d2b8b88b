"""Alarm latency benchmark: how long from a sensor's alarm-raising reading to the committed ticket and to
the control room's screen, while the gateway also ingests 1,000 normal readings a second?

Why it exists (issue 7): a water leak or a trapped passenger is worth nothing on a screen a minute
later. Per alarm it measures publish → the `out/ticket/{id}` "opened" event (the gateway publishes it
only after the transaction that opened the ticket committed, so it bounds publish → commit from above),
publish → the `out/alarm/…` "raised" event, and publish → the same alarm and ticket on the API's live
feed (WebSocket /api/v1/live of a `patrol api` process, as a browser sees it). Beside them, the bare
broker round trip (publish → a subscriber's receipt on the same broker, in the same run) is the floor.

For each database (`--databases`): a private Mosquitto (the shipped rules; the demo site's accounts
plus `--alarms` extra water-leak sensors `bench-leak-NNN`, so every alarm is a first one on its own
device and opens its own ticket), a fresh database with that site, the gateway (`python -m app.cli
gateway`) and the API (`python -m app.cli api`) as subprocesses. A child process publishes normal
readings (QoS 1) from the demo site's sensors at `--rate`/s; after `--warmup` seconds the bench
publishes one wet reading on each extra sensor, `--spacing` seconds apart, and broker probes every
20 ms meanwhile; the background runs on `--tail` seconds after the last alarm. Bounded in count and
in time; everything on 127.0.0.1.

Run from the repository root:  .venv/bin/python bench/alarm_latency.py [--alarms N] [--rate R] ...
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
import queue  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import httpx2  # noqa: E402
import psutil  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402

from app.cli import DEMO_SITE  # noqa: E402
from bench.api_load import PASSWORD, USER, ServeProcess  # noqa: E402
from bench.gateway_process import GatewayProcess  # noqa: E402
from bench.mqtt_load import Login, Publisher, connect, device_logins, login, new_client, paced, running_broker  # noqa: E402
from bench.progress import log, work_dir  # noqa: E402
from bench.report import database_kinds, fmt, machine_line, print_log_issues, print_problems_of, print_table  # noqa: E402
from bench.runs import percentile  # noqa: E402
from core.contract import telemetry_topic  # noqa: E402
from core.directory import READER_KINDS  # noqa: E402
from server.auth import Role, create_user  # noqa: E402
from storage.db import make_engine, migrate, session_factory, transaction  # noqa: E402
from storage.sitefile.load import load_site  # noqa: E402
from storage.sitefile.parse import parse_site_file  # noqa: E402
from storage.sitefile.schema import DeviceSpec, Name, SiteFile  # noqa: E402
from tests.support.accounts import OBSERVER, UNRESTRICTED  # noqa: E402
from tests.support.databases import database  # noqa: E402
from tests.support.mosquitto import MosquittoBroker  # noqa: E402

SITE = "liyuan"
LEAK_LOCATION = "B1-B01-PUMP"
PROBE_TOPIC = "patrol/v1/bench-rtt/reader/probe/ack"  # own output to the gateway (ignored), not under out/
PROBE_EVERY_S = 0.02
NORMAL: dict[str, dict[str, Any]] = {
    "water_leak": {"wet": False, "level_mm": 0.5},
    "gas": {"lel_pct": 1.5, "co_ppm": 2},
    "elevator": {"state": "normal", "floor": 3, "door": "closed", "occupied": False},
    "electric_leak": {"leak_ma": 4.0},
    "smoke": {"alarm": False, "obscuration_pct": 0.2},
    "door": {"open": False},
}


def leak_code(i: int) -> str:
    return f"bench-leak-{i:03d}"


def bench_site(alarms: int, sensors: int) -> SiteFile:
    """The demo site plus `alarms` water-leak sensors (one fresh device per alarm) and `sensors` more of
    every kind for the background: with the demo's 57 alone, 1,000 readings/s is over 17 a second per
    sensor, and the gateway's flood watch (20 a second) moved them all to the slow lane."""
    site = parse_site_file(DEMO_SITE)
    kinds = sorted(NORMAL)

    def spec(code: str, kind: str) -> DeviceSpec:
        name = Name(zh=f"压测传感器 {code}", en=f"Bench sensor {code}")
        return DeviceSpec(code=code, kind=kind, name=name, location=LEAK_LOCATION)  # type: ignore[arg-type]

    extra = [spec(leak_code(i), "water_leak") for i in range(alarms)]
    extra += [spec(f"bench-bg-{i:03d}", kinds[i % len(kinds)]) for i in range(sensors)]
    return site.model_copy(update={"devices": [*site.devices, *extra]})


class ApiProcess(ServeProcess):
    """`python -m app.cli api`: the HTTP API and its live feed alone, as production runs it."""

    def start(self, timeout_s: float = 60.0) -> psutil.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
        env.update(
            **self.broker_env(),
            PATROL_DATABASE_URL=self.db_url,
            PATROL_API_PORT=str(self.api_port),
            PATROL_LOG_LEVEL="WARNING",
        )
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "api"], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"patrol api not ready (exit code {self.proc.poll()}): {self.log_text()[-1500:]}")
            time.sleep(0.2)
        return psutil.Process(self.proc.pid)

    def stop(self, timeout_s: float = 30.0) -> int | None:  # no broker session of its own to end
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


class FirstSeen:
    """First receipt time per key, fed from several threads."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._lock = threading.Lock()

    def see(self, key: str, now: float) -> None:
        with self._lock:
            self.at.setdefault(key, now)

    def wait_for(self, keys: Iterator[str] | list[str], timeout_s: float) -> None:
        wanted, deadline = list(keys), time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(k not in self.at for k in wanted):
            time.sleep(0.05)


class OutWatcher:
    """The gateway's out/ alarm and ticket events (the observer's account: a gateway's read rights),
    and the broker probes (the unrestricted account publishes and receives its own probes)."""

    def __init__(self, broker: MosquittoBroker, seen: FirstSeen) -> None:
        self.seen = seen
        self.out = self._client(
            broker, OBSERVER, [(f"patrol/v1/{SITE}/out/alarm/#", 1), (f"patrol/v1/{SITE}/out/ticket/#", 1)]
        )
        self.probe = self._client(broker, UNRESTRICTED, [(PROBE_TOPIC, 1)])

    def _client(self, broker: MosquittoBroker, account: str, filters: list[tuple[str, int]]) -> Any:
        subscribed = threading.Event()
        client = new_client(f"alarm-{account}")
        client.on_connect = lambda c, *_a: c.subscribe(filters)
        client.on_subscribe = lambda *_a: subscribed.set()
        client.on_message = self._on_message
        connect(client, login(broker, account), clean_start=True)
        if not subscribed.wait(10):
            raise RuntimeError(f"could not subscribe to {filters}")
        return client

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.monotonic()
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(body, dict):
            key = event_key(body)
            if key:
                self.seen.see(f"out:{key}", now)

    def close(self) -> None:
        for client in (self.out, self.probe):
            client.disconnect()
            client.loop_stop()


def event_key(body: dict[str, Any]) -> str | None:
    """`alarm:<device>` for a raised alarm, `ticket:<device>` for an opened ticket, `probe:<n>`."""
    if body.get("type") == "alarm" and body.get("change") == "raised":
        return f"alarm:{body.get('device')}"
    if body.get("type") == "ticket" and body.get("change") == "opened":
        return f"ticket:{body.get('device')}"
    if "probe" in body:
        return f"probe:{body['probe']}"
    return None


class LiveWatcher(threading.Thread):
    """The live feed as a browser opens it: connect, send the token, then read until halted."""

    def __init__(self, api: ApiProcess, token: str, seen: FirstSeen, max_s: float) -> None:
        super().__init__(name="live-watcher", daemon=True)
        self.url = f"ws://127.0.0.1:{api.api_port}/api/v1/live?site={SITE}"
        self.token, self.seen, self.max_s = token, seen, max_s
        self.ready, self.halt = threading.Event(), threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.max_s
        try:
            with ws_connect(self.url, open_timeout=10) as ws:
                ws.send(json.dumps({"token": self.token}))
                if json.loads(ws.recv(timeout=10)).get("type") != "hello":
                    raise RuntimeError("the live feed did not say hello")
                self.ready.set()
                while not self.halt.is_set() and time.monotonic() < deadline:
                    try:
                        body = json.loads(ws.recv(timeout=0.5))
                    except TimeoutError:
                        continue
                    key = event_key(body) if isinstance(body, dict) else None
                    if key:
                        self.seen.see(f"live:{key}", time.monotonic())
        except (OSError, ConnectionClosed, RuntimeError, TimeoutError) as exc:
            self.error = f"live feed: {type(exc).__name__}: {exc}"
            self.ready.set()


def background(
    logins: dict[str, Login], kinds: dict[str, str], rate: float, seconds: float, started: Any, results: Any
) -> None:
    """Child process (its own interpreter, so its pacing does not slow the measuring threads): normal
    readings, QoS 1, round-robin over the sensors, at `rate`/s for `seconds` (at most rate × seconds)."""
    out: dict[str, Any] = {}
    try:
        publisher = Publisher(logins, "background")
        devices = sorted(logins)
        for d in devices:
            publisher.client_for(d)  # log every sensor in before the clock starts
        total = max(1, round(rate * seconds))
        started.set()
        begun = time.monotonic()
        for i in paced(range(total), rate):
            code = devices[i % len(devices)]
            body = {
                "id": f"bg{i:08d}",
                "ts": time.time_ns() // 1_000_000,
                "kind": kinds[code],
                "values": NORMAL[kinds[code]],
            }
            publisher.publish(telemetry_topic(SITE, code), json.dumps(body, separators=(",", ":")))
        out["sent"], out["rate"] = total, total / max(time.monotonic() - begun, 1e-9)
        publisher.close()
    except Exception as exc:
        out["error"] = f"background publisher failed: {type(exc).__name__}: {exc}"
    finally:
        started.set()
        results.put(out)


@dataclass
class AlarmResult:
    name: str
    version: str = "?"
    problems: list[str] = field(default_factory=list)
    alarms: int = 0
    ticket_ms: list[float] = field(default_factory=list)  # publish → out/ ticket opened
    alarm_ms: list[float] = field(default_factory=list)  # publish → out/ alarm raised
    live_alarm_ms: list[float] = field(default_factory=list)  # publish → live feed alarm raised
    live_ticket_ms: list[float] = field(default_factory=list)  # publish → live feed ticket opened
    probe_ms: list[float] = field(default_factory=list)  # bare broker round trip
    probes: int = 0
    bg_sent: int = 0
    bg_rate: float = math.nan
    exit_code: int | None = None
    log_issues: Counter[str] = field(default_factory=Counter)


def prepare(url: str, site: SiteFile) -> tuple[Any, str]:
    """Schema, the bench site and a control-room login for the live feed; the engine and the version."""
    engine = make_engine(url)
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        load_site(session, site)
        create_user(session, USER, PASSWORD, Role.CONTROL_ROOM, None, datetime.now(UTC))
    if engine.dialect.name == "sqlite":
        import sqlite3

        return engine, f"SQLite {sqlite3.sqlite_version}"
    with engine.connect() as conn:
        from sqlalchemy import text

        return engine, f"PostgreSQL {str(conn.execute(text('SHOW server_version')).scalar_one()).split()[0]}"


def run_database(kind: str, broker: MosquittoBroker, site: SiteFile, workdir: Path, args: Any) -> AlarmResult:
    res = AlarmResult(kind, alarms=args.alarms)
    (workdir / kind).mkdir()
    with database(kind, workdir / kind) as url:
        engine, res.version = prepare(url, site)
        engine.dispose()
        gateway = GatewayProcess(broker, url, workdir / kind / "gateway.log")
        api = ApiProcess(broker, url, workdir / kind / "api.log", {})
        watcher: OutWatcher | None = None
        live: LiveWatcher | None = None
        try:
            gateway.start()
            api.start()
            token = httpx2.post(
                f"{api.base}/api/v1/auth/token", json={"username": USER, "password": PASSWORD}, timeout=10
            )
            token.raise_for_status()
            seen = FirstSeen()
            watcher = OutWatcher(broker, seen)
            live = LiveWatcher(api, token.json()["access_token"], seen, max_s=args.timeout + 600)
            live.start()
            if not live.ready.wait(15) or live.error:
                raise RuntimeError(live.error or "the live feed did not open within 15 s")
            measure(broker, site, seen, watcher, res, args)
            if live.error:
                res.problems.append(live.error)
        except Exception as exc:
            res.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            if live is not None:
                live.halt.set()
                live.join(5)
            if watcher is not None:
                watcher.close()
            api.stop()
            res.exit_code = gateway.stop()
            res.log_issues = gateway.issues()
    if res.exit_code != 0:
        res.problems.append(f"gateway exit code after SIGTERM: {res.exit_code}")
    return res


def measure(
    broker: MosquittoBroker, site: SiteFile, seen: FirstSeen, watcher: OutWatcher, res: AlarmResult, args: Any
) -> None:
    """Background readings in a child process; alarms (and probes) from here once it has run `--warmup` s."""
    sensors = {d.code: d.kind for d in site.devices if d.kind not in READER_KINDS and not d.code.startswith("bench-l")}
    ctx = mp.get_context("spawn")
    started, results = ctx.Event(), ctx.Queue()
    seconds = args.warmup + args.alarms * args.spacing + args.tail
    child = ctx.Process(
        target=background,
        args=(device_logins(broker, sensors), sensors, args.rate, seconds, started, results),
        daemon=True,
    )
    child.start()
    try:
        if not started.wait(120):
            raise RuntimeError("the background publisher did not start within 120 s")
        log(f"{res.name}: {args.rate:g} normal readings/s from {len(sensors)} sensors; alarms after {args.warmup:g} s")
        time.sleep(args.warmup)
        codes = [leak_code(i) for i in range(args.alarms)]
        sent, probes = publish_alarms(broker, watcher, codes, args.spacing)
        log(f"{res.name}: {len(sent)} alarms published; waiting for tickets and the live feed")
        keys = [f"{where}:{what}:{c}" for c in codes for where in ("out", "live") for what in ("alarm", "ticket")]
        seen.wait_for(keys, args.timeout)
        pub = results.get(timeout=seconds + 120)
    except queue.Empty:
        pub = {"error": "the background publisher reported nothing"}
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    res.bg_sent, res.bg_rate = pub.get("sent", 0), pub.get("rate", math.nan)
    if "error" in pub:
        res.problems.append(pub["error"])

    def latencies(prefix: str, sent_at: dict[str, float]) -> list[float]:
        return sorted(1000 * (seen.at[f"{prefix}{k}"] - t) for k, t in sent_at.items() if f"{prefix}{k}" in seen.at)

    res.ticket_ms, res.alarm_ms = latencies("out:ticket:", sent), latencies("out:alarm:", sent)
    res.live_ticket_ms, res.live_alarm_ms = latencies("live:ticket:", sent), latencies("live:alarm:", sent)
    res.probe_ms, res.probes = latencies("out:probe:", probes), len(probes)
    for label, got in (("tickets", res.ticket_ms), ("live-feed alarms", res.live_alarm_ms)):
        if len(got) < len(sent):
            res.problems.append(f"{label}: {len(got)} of {len(sent)} within {args.timeout:g} s")


def publish_alarms(
    broker: MosquittoBroker, watcher: OutWatcher, codes: list[str], spacing: float
) -> tuple[dict[str, float], dict[str, float]]:
    """One wet reading per sensor, `spacing` s apart, and a broker probe every PROBE_EVERY_S meanwhile;
    the publish times (monotonic) of each, by device code and by probe number."""
    publisher = Publisher(device_logins(broker, codes), "alarms")
    for code in codes:
        publisher.client_for(code)  # logged in before the clock starts
    sent: dict[str, float] = {}
    probes: dict[str, float] = {}
    begun = time.monotonic()
    try:
        for i, code in enumerate(codes):
            body = {
                "id": f"alm{i:05d}",
                "ts": time.time_ns() // 1_000_000,
                "kind": "water_leak",
                "values": {"wet": True, "level_mm": 12.0},
            }
            sent[code] = time.monotonic()
            publisher.publish(telemetry_topic(SITE, code), json.dumps(body))
            until = begun + (i + 1) * spacing
            while (now := time.monotonic()) < until:
                n = str(len(probes))
                probes[n] = now
                watcher.probe.publish(PROBE_TOPIC, json.dumps({"probe": n}), qos=1)
                time.sleep(max(0.0, min(PROBE_EVERY_S, until - time.monotonic())))
    finally:
        publisher.close()
    return sent, probes


def print_report(args: Any, results: list[AlarmResult]) -> None:
    def p(values: list[float], qs: tuple[float, ...] = (0.5, 0.99, 1.0)) -> str:
        return " / ".join(fmt(percentile(values, q), 1) for q in qs)

    print()
    print(machine_line())
    print(
        f"alarm latency: {args.alarms} water-leak alarms (each a first alarm on its own sensor, opening a ticket), "
        f"{args.spacing:g} s apart, during {args.rate:g} normal readings/s (QoS 1) "
        f"from the demo site's sensors and {args.sensors} more"
    )
    print()
    rows: list[tuple[str, Callable[[AlarmResult], str]]] = [
        ("database", lambda r: r.version),
        ("background readings/s achieved", lambda r: f"{fmt(r.bg_rate)} ({r.bg_sent:,} sent)"),
        ("publish → ticket opened, out/ (ms) p50/p99/max", lambda r: p(r.ticket_ms)),
        ("  tickets seen / alarms sent", lambda r: f"{len(r.ticket_ms)} / {r.alarms}"),
        ("publish → alarm raised, out/ (ms) p50/p99/max", lambda r: p(r.alarm_ms)),
        ("publish → live feed alarm (ms) p50/p99/max", lambda r: p(r.live_alarm_ms)),
        ("publish → live feed ticket (ms) p50/p99/max", lambda r: p(r.live_ticket_ms)),
        ("  live alarms seen / alarms sent", lambda r: f"{len(r.live_alarm_ms)} / {r.alarms}"),
        (
            "bare broker round trip (ms) p50/p99",
            lambda r: p(r.probe_ms, (0.5, 0.99)),
        ),
        ("  probes received / sent", lambda r: f"{len(r.probe_ms):,} / {r.probes:,}"),
        ("gateway log warnings/errors", lambda r: f"{r.log_issues.total():,}"),
    ]
    print_table(rows, results, [r.name for r in results])
    print("\nreference target (not checked): publish → ticket committed p99 < 100 ms")
    print_problems_of(results)
    print_log_issues(results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alarms", type=int, default=100, help="alarms, one per extra sensor (default 100, at most 999)")
    p.add_argument("--spacing", type=float, default=0.2, help="seconds between alarms (default 0.2)")
    p.add_argument("--sensors", type=int, default=200, help="extra background sensors (default 200, at most 999)")
    p.add_argument("--rate", type=float, default=1000.0, help="background normal readings/s (default 1000)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of background before the first alarm (default 5)")
    p.add_argument("--tail", type=float, default=5.0, help="seconds of background after the last alarm (default 5)")
    p.add_argument("--databases", default="postgresql,sqlite", help="comma-separated: postgresql,sqlite")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the last ticket (default 60)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (gateway and API logs, SQLite file)")
    args = p.parse_args(argv)
    args.databases = database_kinds(args.databases, p)
    if (
        not 1 <= args.alarms <= 999
        or not 0 <= args.sensors <= 999
        or args.spacing <= 0
        or args.rate <= 0
        or args.warmup < 0
        or args.tail < 0
    ):
        p.error("bad arguments")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    site = bench_site(args.alarms, args.sensors)
    results: list[AlarmResult] = []
    with work_dir("patrol-alarm-latency-", args.keep) as workdir, running_broker(site) as broker:
        for kind in args.databases:
            try:
                results.append(run_database(kind, broker, site, workdir, args))
            except Exception as exc:  # e.g. PostgreSQL down: report it with the other figures
                results.append(AlarmResult(kind, problems=[f"{type(exc).__name__}: {exc}"]))
    print_report(args, results)
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
