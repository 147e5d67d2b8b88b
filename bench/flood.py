"""Flood benchmark: one device sends 50,000 bad payloads at full speed; do other readers still get
their answers on time, and how much does the quarantine grow?

Why it exists (issue 6, items 2 and 3): such a flood once added 50,000 quarantine rows (18 MB) in
24 s and delayed every other reader's answer to p50 3.7 s / p99 5.8 s (0.06 s idle), because every
message shared one FIFO and every rejection was kept whole. Now the gateway moves a flooding device
to a broker session of its own (the slow lane: its backlog queues apart), serves its inbox
round-robin by device and keeps at most `quarantine_budget_per_hour` new rows per device an hour
(a prefix of each payload), so the targets are: other readers' tap answers p99 < 250 ms during the
flood, quarantine growth bounded, gateway RSS < 300 MB.

One run per database and `--lanes` setting (by default the slow lane on, then off: the baseline of
the same run, the gateway in one session as before), against a private Mosquitto and the real
gateway (`python -m app.cli gateway`, a subprocess): other readers' taps at `--rate`/s for
`--idle-seconds` (the idle figure), then the same taps while the flooder publishes `--flood` bad
taps (QoS 1, distinct ids, so nothing folds: the worst case for storage) on its own reader's topic,
until every flood message has been handled: kept or counted (at least `--min-flood-seconds`).
The flooder is answered red at most `refused_answers_per_reader_s` times a second; the rest of its
answers are counted, not sent. Latency is publish → the reader's answer.

Run from the repository root:  .venv/bin/python bench/flood.py [--flood N] [--rate R] ...
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
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import Engine, func, select  # noqa: E402

from bench.gateway_process import GatewayProcess, PeakRss  # noqa: E402
from bench.ingest import prepare_database  # noqa: E402
from bench.mqtt_load import (  # noqa: E402
    POLL_S,
    Login,
    Publisher,
    connect,
    demo_tags,
    device_logins,
    login,
    new_client,
    running_broker,
)
from bench.progress import log, work_dir  # noqa: E402
from bench.report import database_kinds, fmt, machine_line, print_problems_of, print_table  # noqa: E402
from bench.runs import percentile  # noqa: E402
from core.config import Settings  # noqa: E402
from core.contract import ack_topic, tap_topic  # noqa: E402
from storage.models import QuarantinedMessage  # noqa: E402
from storage.models.ingest import QuarantineBudget  # noqa: E402
from storage.quarantine import DETAIL_CHARS, KEEP_BYTES, TOPIC_CHARS  # noqa: E402
from tests.support.accounts import OBSERVER  # noqa: E402
from tests.support.databases import database  # noqa: E402
from tests.support.mosquitto import MosquittoBroker  # noqa: E402

SITE = "liyuan"
FLOODER = "rdr-h02"
OTHERS = ["rdr-h01", "rdr-h03", "rdr-h04", "rdr-h05", "rdr-h06"]
MB = 1024 * 1024


@dataclass
class Phase:
    """Other readers' taps in one phase: publish → answer times."""

    offered: int = 0
    answered: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


@dataclass
class FloodResult:
    name: str
    slow_lane: bool = True
    version: str = "?"
    problems: list[str] = field(default_factory=list)
    idle: Phase = field(default_factory=Phase)
    flood: Phase = field(default_factory=Phase)
    flood_sent: int = 0
    flood_rate: float = math.nan
    flood_answered: int = 0
    flood_handled: int = 0
    flood_seconds: float = math.nan
    lane_moves: int = 0  # "floods the gateway" lines in the gateway's log
    rows_added: int = 0
    bytes_added: int = 0
    table_growth: int | None = None  # PostgreSQL: on-disk size of the quarantine table and its indexes
    over_budget: int = 0
    rss_start_mb: float = math.nan
    rss_peak_mb: float = math.nan
    exit_code: int | None = None


class ReaderAcks:
    """The answers the other readers get, as they would see them: subscribed to their own ack
    topics only, so the flooder's red answers do not queue in front of theirs in this client (one
    client for the five, with the observer's account: a gateway's read rights)."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.first_seen: dict[str, float] = {}
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = new_client("reader-acks")
        self.client.on_connect = lambda c, *_a: c.subscribe([(ack_topic(SITE, r), 1) for r in OTHERS])
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        connect(self.client, login(broker, OBSERVER), clean_start=True)
        if not subscribed.wait(10):
            raise RuntimeError("could not subscribe to the other readers' ack topics")

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.monotonic()
        try:
            msg_id = json.loads(msg.payload).get("id")
        except (ValueError, AttributeError):
            return
        if isinstance(msg_id, str):
            with self._lock:
                self.first_seen.setdefault(msg_id, now)

    def wait_for(self, ids: dict[str, float], timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(i not in self.first_seen for i in ids):
            time.sleep(POLL_S)
        return sum(1 for i in ids if i in self.first_seen)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def flooder(
    account: Login, count: int, timeout_s: float, answered: Any, started: Any, handled: Any, results: Any
) -> None:
    """Child process (its own interpreter, so its full-speed publishing does not slow the
    measuring client): publish `count` bad taps, count the red answers the flooder gets back (at
    most Settings.refused_answers_per_reader_s a second: the rest are counted, not sent) until the
    parent sees every flood message handled.
    One client, the flooding reader's own account, both publishes and reads its answers (a second
    login with the same account would take the first one's session over)."""
    done = threading.Event()
    publisher = Publisher({FLOODER: account}, "flooder")
    client = publisher.client_for(FLOODER)

    def on_message(_c: Any, _u: Any, _msg: Any) -> None:
        with answered.get_lock():
            answered.value += 1

    ready = threading.Event()
    client.on_subscribe = lambda *_a: ready.set()
    client.on_message = on_message
    client.subscribe(ack_topic(SITE, FLOODER), qos=1)
    ready.wait(10)
    pub: dict[str, Any] = {}
    started.set()
    try:
        begun = time.monotonic()
        for _msg_id, topic, payload in flood_messages(count):
            publisher.publish(topic, payload)
        publisher.flush()
        pub["rate"] = count / max(time.monotonic() - begun, 1e-9)
        handled.wait(timeout_s)
        done.wait(1.0)  # the last red answers on their way
    except Exception as exc:
        pub["error"] = f"flooder failed: {type(exc).__name__}: {exc}"
    finally:
        publisher.close()
    results.put(pub)


def flood_messages(count: int) -> Iterator[tuple[str, str, str]]:
    """Bad taps (no ts, a uid that is not hex): bad_schema, each with its own id so none folds."""
    topic = tap_topic(SITE, FLOODER)
    for i in range(count):
        msg_id = f"fld{i:07d}"
        yield msg_id, topic, f'{{"id":"{msg_id}","uid":"not-a-tag","n":{i}}}'


def paced_taps(
    broker: MosquittoBroker, prefix: str, tags: list[str], rate: float, go_on: Callable[[int, float], bool]
) -> dict[str, float]:
    """Good taps from the other readers at `rate`/s while `go_on(sent, elapsed)`; id → publish time."""
    publisher = Publisher(device_logins(broker, OTHERS), prefix)
    sent: dict[str, float] = {}
    started = time.monotonic()
    try:
        while go_on(len(sent), time.monotonic() - started):
            delay = started + len(sent) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            i = len(sent)
            msg_id = f"{prefix}{i:07d}"
            ts = time.time_ns() // 1_000_000
            payload = f'{{"id":"{msg_id}","ts":{ts},"uid":"{tags[i % len(tags)]}"}}'
            sent[msg_id] = time.monotonic()
            publisher.publish(tap_topic(SITE, OTHERS[i % len(OTHERS)]), payload)
    finally:
        publisher.close()
    return sent


def collect_phase(acks: ReaderAcks, sent: dict[str, float]) -> Phase:
    phase = Phase(offered=len(sent))
    phase.answered = acks.wait_for(sent, timeout_s=60)
    phase.latencies_ms = sorted(1000 * (acks.first_seen[i] - t) for i, t in sent.items() if i in acks.first_seen)
    return phase


def flood_handled(engine: Engine) -> int:
    """Rejections the gateway has committed: folded into quarantine rows, or counted over budget."""
    with engine.connect() as conn:
        kept = conn.execute(select(func.coalesce(func.sum(QuarantinedMessage.count), 0))).scalar_one()
        over = conn.execute(select(func.coalesce(func.sum(QuarantineBudget.over), 0))).scalar_one()
    return int(kept) + int(over)


def quarantine_size(engine: Engine) -> tuple[int, int, int | None, int]:
    """(rows, kept bytes of payload + topic + detail, on-disk bytes on PostgreSQL, over-budget count)."""
    q = QuarantinedMessage
    with engine.connect() as conn:
        rows, kept = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(func.length(q.payload) + func.length(q.topic) + func.length(q.detail)), 0),
            )
        ).one()
        over = conn.execute(select(func.coalesce(func.sum(QuarantineBudget.over), 0))).scalar_one()
        disk = None
        if engine.dialect.name == "postgresql":
            disk = int(conn.execute(select(func.pg_total_relation_size("quarantine"))).scalar_one())
    return int(rows), int(kept), disk, int(over)


def run_database(
    kind: str, broker: MosquittoBroker, workdir: Path, tags: list[str], args: Any, slow_lane: bool = True
) -> FloodResult:
    """One run on a fresh database; `slow_lane=False` is the baseline: the gateway in one broker session."""
    name = kind if slow_lane else f"{kind}, 1 session"
    res = FloodResult(name, slow_lane)
    run_dir = workdir / name.replace(", ", "-").replace(" ", "-")
    run_dir.mkdir()
    with database(kind, run_dir) as url:
        engine, res.version = prepare_database(url)
        env = {"PATROL_SLOW_LANE": "true" if slow_lane else "false"}
        gateway = GatewayProcess(broker, url, run_dir / "gateway.log", env)
        acks: ReaderAcks | None = None
        sampler: PeakRss | None = None
        try:
            proc = gateway.start()
            acks, sampler = ReaderAcks(broker), PeakRss(proc)
            sampler.start()
            log(f"{kind}: idle, {args.rate} taps/s from {len(OTHERS)} readers for {args.idle_seconds} s")
            idle = paced_taps(broker, "idl", tags, args.rate, lambda _n, t: t < args.idle_seconds)
            res.idle = collect_phase(acks, idle)
            rows0, kept0, disk0, over0 = quarantine_size(engine)
            log(f"{kind}: flood of {args.flood} bad taps from {FLOODER}, the same taps from the others meanwhile")
            flood = _flood(broker, engine, tags, args, res)
            res.flood = collect_phase(acks, flood)
            rows1, kept1, disk1, over1 = quarantine_size(engine)
            res.rows_added, res.bytes_added, res.over_budget = rows1 - rows0, kept1 - kept0, over1 - over0
            if disk0 is not None and disk1 is not None:
                res.table_growth = disk1 - disk0
        except Exception as exc:
            res.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            if sampler is not None:
                sampler.halt.set()
                sampler.join(5)
                res.rss_start_mb, res.rss_peak_mb = sampler.first / MB, sampler.peak / MB
            res.exit_code = gateway.stop()
            res.lane_moves = gateway.log_text().count("floods the gateway")
            if acks is not None:
                acks.close()
            engine.dispose()
    for phase, name in ((res.idle, "idle"), (res.flood, "flood")):
        if phase.answered < phase.offered:
            res.problems.append(f"{name}: {phase.answered} of {phase.offered} other readers' taps answered")
    if res.flood_handled < res.flood_sent:
        res.problems.append(f"flood: {res.flood_handled} of {res.flood_sent} bad taps handled")
    if res.exit_code != 0:
        res.problems.append(f"gateway exit code after SIGTERM: {res.exit_code}")
    return res


def _flood(broker: MosquittoBroker, engine: Engine, tags: list[str], args: Any, res: FloodResult) -> dict[str, float]:
    """Start the flooder (a child process); the other readers tap until every flood message is
    handled (at least --min-flood-seconds, at most --timeout); returns their taps' publish times."""
    ctx = mp.get_context("spawn")
    answered, flooding_now, handled, results = ctx.Value("i", 0), ctx.Event(), ctx.Event(), ctx.Queue()
    login = device_logins(broker, [FLOODER])[FLOODER]
    proc = ctx.Process(
        target=flooder,
        args=(login, args.flood, args.timeout, answered, flooding_now, handled, results),
        daemon=True,
    )
    before = flood_handled(engine)
    seen = {"at": 0.0, "handled": 0}
    proc.start()
    if not flooding_now.wait(60):  # the child imports for a few seconds: measure from its first publish
        res.problems.append("the flooder did not start within 60 s")
    started = time.monotonic()

    def flooding(_n: int, elapsed: float) -> bool:
        if elapsed > args.timeout:
            return False
        if elapsed - seen["at"] >= 0.5:  # a query at most twice a second
            seen["at"], seen["handled"] = elapsed, flood_handled(engine) - before
            if seen["handled"] >= args.flood and not handled.is_set():
                res.flood_seconds = elapsed
                handled.set()
        return elapsed < args.min_flood_seconds or not handled.is_set()

    try:
        sent = paced_taps(broker, "dur", tags, args.rate, flooding)
        handled.set()
        if math.isnan(res.flood_seconds):
            res.flood_seconds = time.monotonic() - started
        pub = results.get(timeout=max(1.0, args.timeout + 60 - res.flood_seconds))
    except queue.Empty:
        pub = {"error": "the flooder reported nothing"}
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    res.flood_sent, res.flood_rate, res.flood_answered = args.flood, pub.get("rate", math.nan), answered.value
    res.flood_handled = flood_handled(engine) - before
    if "error" in pub:
        res.problems.append(pub["error"])
    return sent


def print_report(args: Any, results: list[FloodResult]) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    budget = settings.quarantine_budget_per_hour
    row_max = KEEP_BYTES + TOPIC_CHARS + DETAIL_CHARS
    print()
    print(machine_line())
    print(
        f"flood: {args.flood:,} bad taps (QoS 1, distinct) from {FLOODER} at full speed; other readers: "
        f"{args.rate} taps/s from {len(OTHERS)} readers, idle for {args.idle_seconds} s, then during the flood"
    )
    print(
        f"quarantine bound: <= {budget} new rows per device (per site for unknown devices, one for the rest) "
        f"an hour, each <= {row_max:,} bytes kept (payload {KEEP_BYTES:,} + topic {TOPIC_CHARS:,} + detail "
        f"{DETAIL_CHARS:,}): <= {budget * row_max / 1024:,.0f} KiB an hour per device; repeats only counted"
    )
    print()
    rows: list[tuple[str, Callable[[FloodResult], str]]] = [
        ("database", lambda r: r.version),
        ("other readers' answers p50 idle (ms)", lambda r: fmt(r.idle.p(0.5), 1)),
        ("  p50 during the flood (ms)", lambda r: fmt(r.flood.p(0.5), 1)),
        ("other readers' answers p99 idle (ms)", lambda r: fmt(r.idle.p(0.99), 1)),
        ("  p99 during the flood (ms)", lambda r: fmt(r.flood.p(0.99), 1)),
        ("  max idle / flood (ms)", lambda r: f"{fmt(r.idle.p(1.0), 0)} / {fmt(r.flood.p(1.0), 0)}"),
        ("  answered / offered idle", lambda r: f"{r.idle.answered:,} / {r.idle.offered:,}"),
        ("  answered / offered flood", lambda r: f"{r.flood.answered:,} / {r.flood.offered:,}"),
        ("flood publish rate (msg/s)", lambda r: fmt(r.flood_rate)),
        ("flood handled (kept or counted) / sent", lambda r: f"{r.flood_handled:,} / {r.flood_sent:,}"),
        ("  answered red (capped per second)", lambda r: f"{r.flood_answered:,}"),
        ("seconds until all flood handled", lambda r: fmt(r.flood_seconds, 1)),
        ("flooder moved to the slow lane (times)", lambda r: f"{r.lane_moves}" if r.slow_lane else "off"),
        ("quarantine rows added", lambda r: f"{r.rows_added:,}"),
        ("  bytes kept added", lambda r: f"{r.bytes_added:,}"),
        ("  table on disk grew (bytes)", lambda r: "n/a" if r.table_growth is None else f"{r.table_growth:,}"),
        ("  counted over budget", lambda r: f"{r.over_budget:,}"),
        ("gateway RSS ready → peak (MB)", lambda r: f"{fmt(r.rss_start_mb, 1)} → {fmt(r.rss_peak_mb, 1)}"),
    ]
    print_table(rows, results, [r.name for r in results])
    print("\nreference targets (not checked): p99 during the flood < 250 ms, gateway peak RSS < 300 MB")
    print_problems_of(results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flood", type=int, default=50_000, help="bad taps from the flooding reader (default 50000)")
    p.add_argument("--rate", type=float, default=50.0, help="other readers' taps/s, idle and during (default 50)")
    p.add_argument("--idle-seconds", type=float, default=10.0, help="length of the idle phase (default 10)")
    p.add_argument("--min-flood-seconds", type=float, default=10.0, help="shortest flood phase (default 10)")
    p.add_argument("--databases", default="postgresql", help="comma-separated: postgresql,sqlite")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed for the flood phase (default 300)")
    p.add_argument(
        "--lanes",
        default="on,off",
        help="slow lane on, off (the baseline: one broker session), or both in turn (default on,off)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work dir (gateway logs, SQLite file)")
    args = p.parse_args(argv)
    args.databases = database_kinds(args.databases, p)
    args.lanes = [lane.strip() == "on" for lane in args.lanes.split(",") if lane.strip() in ("on", "off")]
    if not args.lanes or args.flood < 1 or args.rate <= 0 or args.idle_seconds <= 0:
        p.error("bad arguments")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tags = demo_tags()
    results: list[FloodResult] = []
    with work_dir("patrol-flood-", args.keep) as workdir, running_broker() as broker:
        for kind in args.databases:
            for slow_lane in args.lanes:
                try:
                    results.append(run_database(kind, broker, workdir, tags, args, slow_lane))
                except Exception as exc:  # e.g. PostgreSQL down: report it with the other figures
                    results.append(FloodResult(kind, slow_lane, problems=[f"{type(exc).__name__}: {exc}"]))
    print_report(args, results)
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
