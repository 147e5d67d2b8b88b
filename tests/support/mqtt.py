"""A test-side MQTT peer: publishes like a device and collects what the gateway answers."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.broker_access import Rule, slow_lane_username
from core.config import BrokerAddress
from tests.support.accounts import OBSERVER, UNRESTRICTED, publisher_of


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


class BrokerRefused(AssertionError):
    """The broker answered CONNECT with a refusal (bad credentials, a client id or Will not allowed)."""


class Peer:
    """A test client. Credentials in the URL (`mqtt://user:pass@host:port`, e.g. `MosquittoBroker.url_for`)
    are used; `granted` holds the broker's answer to each subscription (a refused one is a failure code)."""

    def __init__(
        self,
        url: str,
        subscribe: tuple[str, ...] = (),
        client_id: str | None = None,
        protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311,
    ) -> None:
        b = BrokerAddress.parse(url)
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._stash: list[tuple[str, dict[str, Any]]] = []
        self._ready = threading.Event()
        self._subs = subscribe
        self.refused: Any = None
        self.granted: list[Any] = []
        self.disconnects = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{uuid.uuid4().hex[:8]}", protocol=protocol
        )
        if b.username:
            self.client.username_pw_set(b.username, b.password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect(b.host, b.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise AssertionError("test MQTT peer could not connect/subscribe")
        if self.refused is not None:
            self.close()
            raise BrokerRefused(f"broker refused the connection: {self.refused}")

    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            self.refused = rc
            client.disconnect()
            self._ready.set()
        elif self._subs:
            client.subscribe([(t, 1) for t in self._subs])
        else:
            self._ready.set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reason_codes: Any, _p: Any = None) -> None:
        self.granted = list(reason_codes)
        self._ready.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self.disconnects += 1

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

    def take_all(self) -> list[tuple[str, dict[str, Any]]]:
        """Everything received and not taken yet, without waiting."""
        got, self._stash = self._stash, []
        while True:
            try:
                got.append(self.messages.get_nowait())
            except queue.Empty:
                return got

    def close(self) -> None:
        """Disconnect while the network loop still runs, so the socket is closed now, not at garbage collection."""
        self.client.disconnect()
        self.client.loop_stop()
        # the connection and loop_start's wake-up socket pair: paho 2.2 leaves the pair open when its network
        # thread ended on its own (a refused CONNACK, a connection the broker closed) before loop_stop
        self.client._reset_sockets()


class AccountsBroker(Protocol):
    """A test broker with provisioned accounts (`MosquittoBroker(accounts=…)`, the embedded test broker)."""

    @property
    def port(self) -> int: ...

    @property
    def rules(self) -> Mapping[str, Sequence[Rule]]: ...

    def url_for(self, username: str, password: str | None = None) -> str: ...


def end_session(broker: AccountsBroker, username: str) -> None:
    """Discard the broker's session of `username` (a clean-session login, then DISCONNECT).

    With the client id bound to the username, every test's gateway is `patrol-gateway`, and its session
    (7 days, subscribed to patrol/v1/#) would carry what one test published after its gateway stopped
    into the next test's gateway and database; before, each test's gateway had a client id of its own."""
    Peer(broker.url_for(username), client_id=username).close()


def end_gateway_sessions(broker: AccountsBroker, username: str) -> None:
    """`end_session` for a gateway's two sessions: its own and its slow lane's (gateway/lanes.py), which
    may hold a flooding device's backlog and filters."""
    end_session(broker, username)
    end_session(broker, slow_lane_username(username))


class SitePeers:
    """The test's MQTT side of a site on a broker with accounts: each message is published by the device
    whose topic it is, logged in with that device's own account on a client of its own (made when first
    needed; one client per account, since a second login with the same account takes the first one's
    session over), as in the field. Answers and out/ events are read by the observer (a gateway's rights),
    which also publishes what a gateway would (out/ events, acks)."""

    def __init__(self, broker: AccountsBroker, subscribe: tuple[str, ...] = ()) -> None:
        self.broker = broker
        self.observer = Peer(broker.url_for(OBSERVER), subscribe=subscribe, client_id=OBSERVER)
        self._peers: dict[str, Peer] = {}
        self._lock = threading.Lock()

    def peer_for(self, username: str) -> Peer:
        """The client logged in as `username` (an account of the broker), connected on first use."""
        if username == OBSERVER:
            return self.observer
        with self._lock:
            if username not in self._peers:
                self._peers[username] = Peer(self.broker.url_for(username), client_id=username)
            return self._peers[username]

    def sender(self, topic: str) -> Peer:
        username = publisher_of(topic, self.broker.rules)
        if username is None:
            raise AssertionError(
                f"no account of this broker may publish on {topic!r}: the broker would drop it. For input the "
                "ACL stops, use publish_unrestricted (as on a broker without these ACLs)"
            )
        return self.peer_for(username)

    def publish(self, topic: str, payload: bytes | dict[str, Any], qos: int = 1, retain: bool = False) -> None:
        """Published by the account that owns `topic` (see the class docstring); waits for the broker."""
        self.sender(topic).publish(topic, payload, qos=qos, retain=retain)

    def publish_unrestricted(self, topic: str, payload: bytes | dict[str, Any]) -> None:
        """Input no device account may send (a stray topic, a device the broker does not know): what the
        gateway still meets on a broker without these ACLs, sent with the unrestricted test account."""
        self.peer_for(UNRESTRICTED).publish(topic, payload)

    def take(self, count: int, timeout: float = 15.0, topic_suffix: str = "") -> list[tuple[str, dict[str, Any]]]:
        """What the observer received: see `Peer.take`."""
        return self.observer.take(count, timeout=timeout, topic_suffix=topic_suffix)

    def answers(self, ids: Collection[str], timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """The first answer to each tap of `ids`, however many answers come: a tap may be answered twice
        (its redelivery, or both of the gateway's sessions for a moment while a flooding reader is moved
        to the slow lane, gateway/lanes.py), and every repeat has the same verdict."""
        wanted, got = set(ids), dict[str, dict[str, Any]]()
        deadline = time.monotonic() + timeout
        while not wanted <= got.keys():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no answer to {sorted(wanted - got.keys())[:10]} (of {len(wanted)})")
            [(_, body)] = self.take(1, timeout=remaining, topic_suffix="/ack")
            if body.get("id") in wanted:
                got.setdefault(body["id"], body)
        return got

    def close(self) -> None:
        with self._lock:
            peers, self._peers = list(self._peers.values()), {}
        for peer in [*peers, self.observer]:
            peer.close()
