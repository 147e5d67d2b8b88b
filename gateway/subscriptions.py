"""What one broker session subscribes to, kept true across reconnects and lane moves.

The gateway's two sessions hand devices to each other (gateway/lanes.py); a message that matches no
subscription of either is discarded by the broker, so every change must know what the broker has
confirmed on the current connection, not merely what was asked for. One lock covers reading the
wanted filters and sending the packets, on the network thread (at connect) and on the lanes thread
(moves) alike: the broker applies one session's packets in the order they were sent, so the order
under the lock is the order of effect.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.link import Filters

log = logging.getLogger(__name__)
SUBSCRIBE_CHUNK = 100  # filters per SUBSCRIBE packet (one per device while a device is in the slow lane)
SUBACK_TIMEOUT_S = 10.0


class Subscriptions:
    """The wanted filters of one session, those the broker confirmed on this connection, and those a
    session left by an earlier process may still hold (`forget`: unsubscribed at every connect)."""

    def __init__(self, client: mqtt.Client, filters: Filters, v5: bool) -> None:
        self._client = client
        self._v5 = v5
        self._wanted: Filters = tuple(filters)
        self._forget: set[str] = set()
        self._confirmed: set[str] = set()  # on the current connection
        self._asked: dict[int, tuple[str, ...]] = {}  # SUBSCRIBE packet id → its filters, this connection
        self._lock = threading.Condition(threading.RLock())
        self.ready = threading.Event()  # the wanted filters of the first SUBSCRIBE confirmed since connecting

    @property
    def filters(self) -> Filters:
        """What this session subscribes to now (and again at every reconnect)."""
        with self._lock:
            return self._wanted

    def connected(self) -> None:
        """On the network thread, for a new connection: subscribe to what is wanted, then drop the
        leftovers (in this order, in one session: no moment without a subscription)."""
        with self._lock:
            self._confirmed.clear()
            self._asked.clear()
            names = {f for f, _ in self._wanted}
            forget = sorted(self._forget - names)
            if not self._wanted:
                self.ready.set()  # a slow lane with no device in it yet
            self._send(self._wanted)
            if forget:
                self._client.unsubscribe(forget)
            self._lock.notify_all()  # a move waiting on the old connection gives up and is retried

    def disconnected(self) -> None:
        self.ready.clear()

    def acknowledged(self, mid: int, reason_codes: Any) -> int:
        """The broker's SUBACK: confirms the filters it accepted; returns how many it refused."""
        with self._lock:
            names = self._asked.pop(mid, ())
            refused = 0
            for name, code in zip(names, reason_codes, strict=False):
                if code.is_failure:
                    refused += 1
                else:
                    self._confirmed.add(name)
            self._lock.notify_all()
        if not refused:
            self.ready.set()
        return refused

    def add(self, filters: Filters, timeout_s: float = SUBACK_TIMEOUT_S) -> bool:
        """Want `filters` as well and wait until the broker has confirmed every one of them on this
        connection: False when it has not (not connected, refused, no answer in time). Called
        before the other session drops them, so only a confirmation counts."""
        with self._lock:
            have = {f for f, _ in self._wanted}
            self._wanted += tuple((f, q) for f, q in filters if f not in have)
            need = tuple((f, q) for f, q in filters if f not in self._confirmed)
            if not need:
                return True
            if not self._client.is_connected():
                return False
            mids = self._send(need)
            names = {f for f, _ in need}

            def answered() -> bool:
                return names <= self._confirmed or not any(m in self._asked for m in mids)

            self._lock.wait_for(answered, timeout_s)
            return names <= self._confirmed

    def set(self, filters: Filters, forget: Filters = ()) -> None:
        """Want exactly `filters` from now on: subscribe to what is new (without waiting: see `add`),
        then unsubscribe from what is gone. `forget`: what an earlier process may have left."""
        with self._lock:
            wanted = {f for f, _ in filters}
            have = {f for f, _ in self._wanted}
            new = tuple((f, q) for f, q in filters if f not in have)
            gone = sorted(have - wanted)
            self._wanted = tuple(filters)
            self._confirmed -= set(gone)
            self._forget = (self._forget | set(gone) | {f for f, _ in forget}) - wanted
            if self._client.is_connected():
                self._send(new)
                if gone:
                    self._client.unsubscribe(gone)

    def drop(self, filters: Filters) -> bool:
        """Unsubscribe now from those of `filters` not wanted (leftovers of an earlier process); True
        when sent, else they are dropped at the next connect."""
        with self._lock:
            stale = sorted({f for f, _ in filters} - {f for f, _ in self._wanted})
            self._forget |= set(stale)
            if not stale:
                return True
            if not self._client.is_connected():
                return False
            rc, _mid = self._client.unsubscribe(stale)
            return bool(rc == mqtt.MQTT_ERR_SUCCESS)

    def _send(self, filters: Filters) -> list[int]:
        """SUBSCRIBE in packets of SUBSCRIBE_CHUNK filters; their packet ids. Lock held. Over MQTT 5,
        No Local keeps this session's own publications from coming back to it (not allowed on shared
        subscriptions, where the decoder skips them instead)."""
        mids: list[int] = []
        for i in range(0, len(filters), SUBSCRIBE_CHUNK):
            chunk = filters[i : i + SUBSCRIBE_CHUNK]
            opts: list[tuple[str, Any]] = (
                [(f, SubscribeOptions(qos=q, noLocal=not f.startswith("$share/"))) for f, q in chunk]
                if self._v5
                else list(chunk)
            )
            rc, mid = self._client.subscribe(opts)
            if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
                break  # not connected: the next connect subscribes to everything wanted
            self._asked[mid] = tuple(f for f, _ in chunk)
            mids.append(mid)
        return mids
