"""A session's subscriptions: only what the broker confirmed counts, and packets go out in the order
that keeps a device subscribed somewhere (issue 6 item 3: the slow lane, gateway/lanes.py). A client
that records the packets it is asked to send stands in for paho; nothing connects."""

from __future__ import annotations

import threading
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from gateway.subscriptions import Subscriptions

OK = ReasonCode(PacketTypes.SUBACK, identifier=1)
REFUSED = ReasonCode(PacketTypes.SUBACK, identifier=0x87)  # not authorized
WILDCARD = (("patrol/v1/#", 1),)
X = (("patrol/v1/liyuan/reader/rdr-h02/tap", 1),)


class Recorder:
    """Records SUBSCRIBE/UNSUBSCRIBE in order; `answer` plays the broker's SUBACK."""

    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.packets: list[tuple[str, list[str]]] = []
        self.mid = 0
        self.subs: Subscriptions | None = None
        self.answer: Any = None  # None: no SUBACK comes; else the reason code to answer with

    def is_connected(self) -> bool:
        return self.connected

    def subscribe(self, opts: list[tuple[str, Any]]) -> tuple[int, int | None]:
        if not self.connected:
            return 4, None  # MQTT_ERR_NO_CONN
        self.mid += 1
        self.packets.append(("sub", [f for f, _ in opts]))
        if self.answer is not None and self.subs is not None:
            mid, subs, code = self.mid, self.subs, self.answer
            threading.Timer(0.01, lambda: subs.acknowledged(mid, [code] * len(opts))).start()
        return 0, self.mid

    def unsubscribe(self, topics: list[str]) -> tuple[int, int]:
        self.packets.append(("unsub", list(topics)))
        return 0, 0


def _subs(client: Recorder, filters: tuple[tuple[str, int], ...] = WILDCARD) -> Subscriptions:
    subs = Subscriptions(client, filters, v5=True)  # type: ignore[arg-type]
    client.subs = subs
    return subs


def test_adding_filters_while_disconnected_is_never_taken_for_confirmed() -> None:
    """Asked twice while the session is down: both times False (the second once returned True, and the
    other session then dropped the device: its messages matched no subscription)."""
    subs = _subs(Recorder(connected=False))
    assert subs.add(X, timeout_s=0.1) is False
    assert subs.add(X, timeout_s=0.1) is False
    assert X[0] in subs.filters, "still wanted: the next connect subscribes to it"


def test_only_the_brokers_confirmation_counts_and_a_refusal_is_not_one() -> None:
    client = Recorder()
    subs = _subs(client)
    client.answer = REFUSED
    assert subs.add(X, timeout_s=2) is False
    client.answer = OK
    assert subs.add(X, timeout_s=2) is True, "asked again, and confirmed this time"
    assert subs.add(X, timeout_s=0.1) is True, "confirmed on this connection: nothing more to send"
    assert [p for p in client.packets if p[0] == "sub"] == [("sub", [X[0][0]]), ("sub", [X[0][0]])]


def test_a_reconnect_forgets_the_confirmations_and_subscribes_before_it_unsubscribes() -> None:
    client = Recorder()
    subs = _subs(client)
    client.answer = OK
    assert subs.add(X, timeout_s=2)
    subs.set(X, forget=WILDCARD)  # e.g. the slow lane: only X now; the wildcard is a leftover
    client.packets.clear()
    client.answer = None  # the broker is slow to answer after the reconnect
    subs.connected()
    assert client.packets == [("sub", [X[0][0]]), ("unsub", [WILDCARD[0][0]])]
    assert subs.add(X, timeout_s=0.1) is False, "not confirmed on the new connection yet"


def test_setting_new_filters_subscribes_to_them_before_unsubscribing_the_old_ones() -> None:
    client = Recorder()
    subs = _subs(client)
    per_device = (("patrol/v1/liyuan/+/rdr-h01/#", 1),)
    subs.set(per_device)
    assert client.packets == [("sub", [per_device[0][0]]), ("unsub", [WILDCARD[0][0]])]
    assert subs.filters == per_device
