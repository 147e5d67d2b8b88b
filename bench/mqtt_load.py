"""The bench's MQTT clients: the tap publisher, the bare-subscriber baseline and the reader-ack collector.

The bench broker has the shipped rules and accounts (`bench_broker`): each reader publishes on a client
of its own with its own account, as in the field; the baseline subscriber logs in with a gateway account
of its own (`patrol-gateway-2`), the ack collectors with the test observer's (a gateway's read rights).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import queue
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from app.cli import DEMO_SITE
from bench.progress import log
from core.broker_access import device_username
from core.contract import parse_topic, tap_topic
from gateway.mqtt_link import RECEIVE_MAXIMUM  # the baseline asks the broker for what the gateway asks
from storage.sitefile.parse import parse_site_file
from storage.sitefile.schema import SiteFile
from tests.support.accounts import OBSERVER, SECOND_GATEWAY, accounts_for_tests
from tests.support.mosquitto import MosquittoBroker

T = TypeVar("T")

SITE = "liyuan"
READERS = [f"rdr-h0{i}" for i in range(1, 7)]
ACK_FILTER = "patrol/v1/+/reader/+/ack"
WINDOW = 20_000  # unacked publishes allowed: paho refuses past 65,535 (ERR_QUEUE_SIZE)
CHUNK = 1_000  # when the window is full, wait for this many of the oldest
# paho's own in-flight cap: 0 = none, the WINDOW above bounds it. paho 2.2 rescans its whole
# outgoing queue on every PUBACK when a cap is set (Client._update_inflight), which at 1,000 halved
# the publisher here (about 7 k msg/s against 14 k) and made the baseline measure the publisher.
PUBLISHER_INFLIGHT = 0
POLL_S = 0.2


@dataclass(frozen=True)
class Login:
    """One account of the bench broker: what a client (in this process or a child) logs in with."""

    port: int
    username: str
    password: str = field(repr=False)


def bench_broker(site: SiteFile | None = None) -> MosquittoBroker:
    """Mosquitto with the shipped rules and the accounts of `site` (default: the demo site's;
    tests/support/accounts.py)."""
    return MosquittoBroker(accounts=accounts_for_tests(site or parse_site_file(DEMO_SITE)))


@contextmanager
def running_broker(site: SiteFile | None = None) -> Iterator[MosquittoBroker]:
    """`bench_broker(site)` started, and cleaned up however the run ends."""
    broker = bench_broker(site)
    try:
        broker.start()
        log(f"mosquitto on 127.0.0.1:{broker.port}")
        yield broker
    finally:
        broker.cleanup()


def demo_tags() -> list[str]:
    """The demo site's checkpoint tags, which the benches' taps name."""
    return [loc.tag for loc in parse_site_file(DEMO_SITE).locations if loc.tag]


def login(broker: MosquittoBroker, username: str) -> Login:
    return Login(broker.port, username, broker.passwords[username])


def device_logins(broker: MosquittoBroker, devices: Iterable[str] = READERS) -> dict[str, Login]:
    """Each device's own account, by device code."""
    return {code: login(broker, device_username(SITE, code)) for code in devices}


def connect(client: mqtt.Client, account: Login, timeout_s: float = 10.0, **kwargs: Any) -> None:
    """Log in and wait for the CONNACK, so the first publish or subscribe does not race it."""
    client.username_pw_set(account.username, account.password)
    client.connect("127.0.0.1", account.port, keepalive=60, **kwargs)
    client.loop_start()
    deadline = time.monotonic() + timeout_s
    while not client.is_connected():
        if time.monotonic() > deadline:
            client.loop_stop()
            raise RuntimeError(f"no CONNACK from 127.0.0.1:{account.port} as {account.username} within {timeout_s}s")
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


def paced(items: Iterable[T], rate: float) -> Iterator[T]:
    """The items at `rate` per second from the first on: pacing an offered rate, not waiting for an outcome."""
    start = time.monotonic()
    for i, item in enumerate(items):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield item


def tap_messages(prefix: str, count: int, tags: list[str]) -> Iterator[tuple[str, str, str]]:
    """(id, topic, payload) of unique taps, readers and tags round-robin; lazily made, so `ts`
    is the publish time."""
    topics = [tap_topic(SITE, reader) for reader in READERS]
    for i in range(count):
        msg_id = f"{prefix}{i:07d}"
        payload = f'{{"id":"{msg_id}","ts":{time.time_ns() // 1_000_000},"uid":"{tags[i % len(tags)]}"}}'
        yield msg_id, topics[i % len(topics)], payload


class Publisher:
    """QoS 1 publishing with one bounded window of unacknowledged messages: past 65,535 paho refuses
    (ERR_QUEUE_SIZE), and an unbounded backlog would measure the bench, not the gateway. Each device
    publishes on a client of its own, logged in with its own account (`logins`, by device code)."""

    def __init__(self, logins: Mapping[str, Login], name: str) -> None:
        self._logins, self._name = dict(logins), name
        self.clients: dict[str, mqtt.Client] = {}
        self._pending: deque[mqtt.MQTTMessageInfo] = deque()

    def client_for(self, device: str) -> mqtt.Client:
        """The device's client, logged in on first use."""
        if device not in self.clients:
            if device not in self._logins:
                raise RuntimeError(f"publisher {self._name} has no account for device {device}")
            client = new_client(f"{self._name}-{device}")
            client.max_inflight_messages_set(PUBLISHER_INFLIGHT)
            connect(client, self._logins[device])
            self.clients[device] = client
        return self.clients[device]

    def publish(self, topic: str, payload: str) -> None:
        parsed = parse_topic(topic)
        if parsed is None:
            raise RuntimeError(f"not a device topic: {topic}")
        info = self.client_for(parsed.device).publish(topic, payload, qos=1)
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

    def flush(self) -> None:
        """Wait for every PUBACK."""
        self._drain(keep=0)

    def close(self) -> None:
        """Wait for every PUBACK, then leave."""
        try:
            self._drain(keep=0)
        finally:
            for client in self.clients.values():
                client.disconnect()
                client.loop_stop()


def publish_all(
    logins: Mapping[str, Login], name: str, messages: Iterator[tuple[str, str, str]], out: dict[str, Any]
) -> None:
    """Publish as fast as the window allows; a thread target, so failures go into `out`."""
    try:
        publisher = Publisher(logins, name)
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


def baseline_subscriber(account: Login, expected: int, timeout_s: float, ready: Any, results: Any) -> None:
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
    connect(client, account, clean_start=False, properties=props)
    done.wait(timeout_s)
    end_session(client)
    results.put(state)


def run_baseline(broker: MosquittoBroker, taps: int, tags: list[str], timeout_s: float) -> dict[str, Any]:
    """Publish N taps with nobody but the bare subscriber listening; its receive rate is the
    ceiling a Python QoS 1 consumer has on this machine with this broker."""
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    subscriber = login(broker, SECOND_GATEWAY)  # a gateway account, not the gateway's: its session is its own
    proc = ctx.Process(target=baseline_subscriber, args=(subscriber, taps, timeout_s, ready, results), daemon=True)
    proc.start()
    try:
        if not ready.wait(30):
            return {"error": "baseline subscriber did not subscribe within 30 s"}
        pub: dict[str, Any] = {}
        publish_all(device_logins(broker), "baseline-pub", tap_messages("bas", taps, tags), pub)
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


# ----------------------------------------------------------------------------- reader acks


class AckCollector:
    """The reader acks as the readers see them (one client, the observer's account, for all of them);
    the gateway sends one only after the commit. Keeps the first receive time per id (a redelivered tap
    is answered again)."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.first_seen: dict[str, float] = {}
        self.by_prefix: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.verdicts: dict[str, str] = {}  # msg id → "ok" or the reason of its first answer
        subscribed = threading.Event()
        self.client = new_client("acks")
        self.client.on_connect = lambda c, *_a: c.subscribe(ACK_FILTER, qos=1)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        connect(self.client, login(broker, OBSERVER), clean_start=True)
        if not subscribed.wait(10):
            raise RuntimeError(f"could not subscribe to {ACK_FILTER}")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        msg_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(msg_id, str) and msg_id not in self.first_seen:
            self.first_seen[msg_id] = now
            self.by_prefix[msg_id[:3]] += 1
            self.verdicts[msg_id] = "ok" if body.get("ok") else str(body.get("reason"))
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
