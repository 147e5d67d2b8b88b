"""A test-side MQTT peer: publishes like a device and collects what the gateway answers."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.config import BrokerAddress


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll for an outcome produced by another process or thread (not a stand-in for a clock)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


T = TypeVar("T")


def wait_quiet(read: Callable[[], T], quiet_s: float = 0.5, timeout: float = 20.0, what: str = "value") -> T:
    """Poll `read` until its value has not changed for `quiet_s` and return that value.

    For waiting until another process or thread has gone idle (not a stand-in for a clock): after waiting for a
    count to reach at least N, assert `wait_quiet(count) == N` so that a late extra row is seen, not slipped past."""
    deadline = time.monotonic() + timeout
    value = read()
    since = time.monotonic()
    while True:
        time.sleep(0.05)
        latest = read()
        now = time.monotonic()
        if latest != value:
            value, since = latest, now
        elif now - since >= quiet_s:
            return value
        if now > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} to stop changing (last {value!r})")


class Peer:
    def __init__(self, url: str, subscribe: tuple[str, ...] = ()) -> None:
        b = BrokerAddress.parse(url)
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._stash: list[tuple[str, dict[str, Any]]] = []
        self._ready = threading.Event()
        self._subs = subscribe
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311
        )
        self.client.on_connect = lambda c, *_: (
            c.subscribe([(t, 1) for t in self._subs]) if self._subs else self._ready.set()
        )
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect(b.host, b.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise AssertionError("test MQTT peer could not connect/subscribe")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {"_raw": msg.payload}
        self.messages.put((msg.topic, body))

    def publish(self, topic: str, payload: bytes | dict[str, Any], qos: int = 1, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=qos, retain=retain).wait_for_publish(10)

    def take(self, count: int, timeout: float = 15.0, topic_suffix: str = "") -> list[tuple[str, dict[str, Any]]]:
        """The next `count` messages on topics ending with `topic_suffix`; others are kept for later calls."""
        got: list[tuple[str, dict[str, Any]]] = []
        kept: list[tuple[str, dict[str, Any]]] = []
        for item in self._stash:
            (got if item[0].endswith(topic_suffix) and len(got) < count else kept).append(item)
        self._stash = kept
        deadline = time.monotonic() + timeout
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"expected {count} messages ending {topic_suffix!r}, got {got}")
            try:
                topic, body = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            (got if topic.endswith(topic_suffix) else self._stash).append((topic, body))
        return got

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
