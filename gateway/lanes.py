"""The gateway's two broker sessions: the main lane for everyone, the slow lane for flooding devices.

An MQTT session delivers in the order the broker received, so one flooding device's backlog at the
broker delays every message behind it, whatever the gateway does with what it has received. The only
place to put that backlog apart is another session. Normally the first session subscribes to the
whole contract (`patrol/v1/#`) and the second to nothing. When `FloodWatch` names the first flooding
device, the idle session subscribes to every other device (and the broker has confirmed), then the
flooded one trades its wildcard for the flooder's topics (subscribe, then unsubscribe: one session's
packets are applied in order), and the two swap roles: what the broker had already queued in the
flooded session delays only what was sent before the move. A second flooder is moved the plain way
(the slow session gains it, confirmed, then the main one drops it), and a device comes back the other
way round. A device is never without a subscription, so nothing it sends is lost, only duplicated
for a moment (the gateway handles a redelivery once). The moves run on a thread of their own: waiting
for a broker's confirmation must not hold up the worker's batches.

While some device is in the slow lane, the main session hears only the devices the directory knows:
a device without a site-file entry (which a broker with per-device accounts refuses anyway) is not
heard until the flood is over; nor are topics outside the contract from a device in the slow lane
(which its account may not publish to anyway).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

from paho.mqtt.client import MQTTMessageInfo

from core.contract import INBOUND_CHANNELS, PREFIX, SUBSCRIPTIONS
from gateway import metrics
from gateway.link import Filters
from gateway.messages import Received
from gateway.mqtt_link import MqttLink, settled
from gateway.subscriptions import SUBACK_TIMEOUT_S as SUBACK_WAIT_S

log = logging.getLogger(__name__)
FIRST, SECOND = 0, 1  # Received.lane: the session that delivered a message (the gateway's account, its -slow one)
RELEASE_S = 0.01  # how often held slow-lane acks are looked at when no new ack comes
RETRY_S = 1.0  # a move the broker did not confirm is tried again this often


def device_filter(source: str) -> str:
    """Every topic of one device (`site/device`, as `pipeline.source_of` names it), whatever its role:
    the main session's filter for a device while another one is apart (its own answers to the
    device do not come back to it: MQTT 5 No Local)."""
    site, _, device = source.partition("/")
    return f"{PREFIX}/{site}/+/{device}/#"


def slow_lane_filters(source: str) -> tuple[str, ...]:
    """What one device publishes under the contract, and nothing the gateway publishes to it: the
    slow session is another session, where No Local does not hold back the main session's answers,
    which would come back to be acked and counted as the device's own traffic."""
    site, _, device = source.partition("/")
    return tuple(f"{PREFIX}/{site}/{role}/{device}/{channel}" for role, channel in sorted(INBOUND_CHANNELS))


def plan(devices: Iterable[str], slowed: frozenset[str]) -> tuple[Filters, Filters]:
    """(main filters, slow filters) with `slowed` devices apart; `devices` are the directory's."""
    if not slowed:
        return SUBSCRIPTIONS, ()
    qos = SUBSCRIPTIONS[0][1]
    main = tuple((device_filter(d), qos) for d in sorted(set(devices) - slowed))
    return main, tuple((f, qos) for d in sorted(slowed) for f in slow_lane_filters(d))


def everything(devices: Iterable[str]) -> Filters:
    """Every filter either lane may have subscribed to for these devices: what a session left by an
    earlier process may still hold, to drop when it is not wanted now."""
    qos = SUBSCRIPTIONS[0][1]
    each = [f for d in sorted(set(devices)) for f in (device_filter(d), *slow_lane_filters(d))]
    return SUBSCRIPTIONS + tuple((f, qos) for f in each)


class LaneLink:
    """The gateway's `Link` over two sessions. Publications go through the main session; a message
    is acked on the session that delivered it (`Received.lane`). The lanes thread moves devices as
    `flooding` says."""

    def __init__(
        self,
        first: MqttLink,
        second: MqttLink,
        devices: Callable[[], Iterable[str]],
        flooding: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        """`devices`: the directory's devices (`site/device`) now; `flooding`: the devices that should
        be in the slow lane now (`FloodWatch.flooding`). `first` starts in the main role."""
        self._sessions = (first, second)
        self._main = FIRST  # which session has the main role now (they swap: see `_route`)
        self.subscribed = first.subscribed
        self._devices = devices
        self._flooding = flooding
        self._stale: Filters = ()  # what the slow session may hold from an earlier process, until dropped
        self._slowed: frozenset[str] = frozenset()  # as the broker has it now
        self._reroute = False
        self._nudged = False
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="gateway-lanes", daemon=True)
        self._held: deque[tuple[MQTTMessageInfo | None, MqttLink, Received]] = deque()  # see `ack`
        self._held_lock = threading.Lock()

    @property
    def main(self) -> MqttLink:
        """The session that hears every device but the flooding ones, and publishes the answers."""
        return self._sessions[self._main]

    @property
    def slow(self) -> MqttLink:
        """The other one: the flooding devices' (none most of the time)."""
        return self._sessions[1 - self._main]

    @property
    def fatal_error(self) -> str | None:
        """Only the gateway's own account's: without the second session the gateway still works, as before."""
        return self._sessions[FIRST].fatal_error

    @property
    def slowed(self) -> frozenset[str]:
        """The devices in the slow lane now."""
        return self._slowed

    def start(self) -> None:
        """The main session drops what an earlier process left in it right after subscribing (in one
        session the broker applies both in order). The slow one keeps it until `_tidy`, once the main
        session's subscription is confirmed: dropped earlier, a device's messages would match no
        subscription for a moment, and the broker would discard them."""
        self._stale = everything(self._devices())
        self.main.subscriptions.set(SUBSCRIPTIONS, forget=self._stale)
        for session in reversed(self._sessions):
            session.start()
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(SUBACK_WAIT_S + 1)
        for session in self._sessions:
            session.stop()

    def nudge(self) -> None:
        """A device has just started flooding: look now rather than at the next RETRY_S. Does not wait."""
        with self._changed:
            self._nudged = True
            self._changed.notify_all()

    def reroute(self) -> None:
        """The directory changed: devices it added need their own filter while others are apart."""
        with self._changed:
            self._reroute = True
            self._changed.notify_all()

    def ack(self, msg: Received) -> None:
        """Answers go out before the ack (gateway/answering.py). On one session the order of the
        packets keeps that promise; a slow-lane message is answered on the main session, so its ack
        is held until the broker has acknowledged the main session's publications made before it
        (`_release`, without waiting here: the answer thread must not wait for a round trip per
        batch). Called from the answer thread."""
        main, session = self.main, self._sessions[msg.lane]
        if session is main:
            session.ack(msg)
            return
        mark = main.newest_publication()
        with self._held_lock:
            self._held.append((mark, session, msg))
        self._release()
        if self._held:
            with self._changed:
                self._changed.notify_all()  # the lanes thread looks again every RELEASE_S until all are acked

    def _release(self) -> None:
        """Ack the held slow-lane messages, oldest first, whose answers the broker has. While the main
        session is down nothing is answered, so nothing is released: the slow lane waits with it."""
        with self._held_lock:
            while self._held:
                mark, session, msg = self._held[0]
                if mark is not None and not settled(mark):
                    return
                self._held.popleft()
                session.ack(msg)

    @property
    def holding(self) -> int:
        """Slow-lane messages answered but not acked yet."""
        return len(self._held)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.main.publish(topic, payload, qos, retain)

    def backlog(self) -> int:
        return self.main.backlog()

    def _run(self) -> None:
        """Keep the lanes as `flooding` says: looked at when nudged, and every RETRY_S (a device quiet
        for the hold time comes back; leftovers are dropped; the slow lane's devices come back while
        its session is down), or every RELEASE_S while acks are held."""
        warned = False
        while True:
            with self._changed:
                if self._stopping:
                    return
                reroute, self._reroute, self._nudged = self._reroute, False, False
            done = True
            try:
                self._tidy()
                self._release()
                if self.slow.fatal_error and not warned:
                    warned = True
                    log.error("no slow lane, a flooding device will delay the others: %s", self.slow.fatal_error)
                wanted = self._flooding()
                if not self.slow.connected:
                    wanted = frozenset()  # its session may be gone (a broker without persistence): main hears all
                if wanted != self._slowed or reroute:
                    done = self._route(wanted)
                    if done:
                        self._moved(wanted)
                    else:
                        self._reroute = True  # a half-done move leaves filters behind: plan again next time
            except Exception:  # the thread must outlive a bug: the lanes stay as they are
                log.exception("could not move devices between the gateway's sessions")
                done = False
            with self._changed:
                if not done:
                    self._changed.wait(RETRY_S)  # the broker did not confirm: not again at once
                elif not (self._nudged or self._reroute or self._stopping):
                    self._changed.wait(RELEASE_S if self._held else RETRY_S)

    def _tidy(self) -> None:
        """Drop the second session's leftovers (see `start`) once the first is subscribed (only
        filters that session does not want now are dropped, whichever role it has by then)."""
        first, second = self._sessions
        if self._stale and first.subscribed.is_set() and second.subscriptions.drop(self._stale):
            self._stale = ()

    def _route(self, slowed: frozenset[str]) -> bool:
        """Put `slowed` devices in the slow lane and the rest in the main one. A session that loses
        devices drops them only after the other has confirmed its subscription to them; False (and
        nothing dropped) when that was not confirmed: tried again within RETRY_S."""
        main, slow = plan(self._devices(), slowed)
        if not main:
            return False  # no other device known: keep the wildcard rather than hear nobody
        if slowed and not self._slowed:
            return self._swap(main, slow)
        if not self.slow.subscriptions.add(slow):  # the slow lane gains devices: confirmed before main drops them
            return False
        if self._slowed - slowed and not self.main.subscriptions.add(main):  # and the other way round
            return False
        self.main.subscriptions.set(main)
        self.slow.subscriptions.set(slow)
        return True

    def _swap(self, main: Filters, slow: Filters) -> bool:
        """The first flood: the idle session takes every other device (confirmed first), then the
        flooded one keeps only the flooding devices. The roles swap, so the messages the broker
        routed to the flooded session before the move, queued there in the order received, delay
        only the taps sent before it: every tap sent after it goes to a session with no backlog."""
        fresh, flooded = self.slow, self.main
        if not fresh.subscriptions.add(main):
            return False
        flooded.subscriptions.set(slow)  # its devices' filters, then the wildcard dropped: one session, in order
        self._main = 1 - self._main
        return True

    def _moved(self, slowed: frozenset[str]) -> None:
        gone, back = slowed - self._slowed, self._slowed - slowed
        for source in sorted(gone):
            log.warning("device %s floods the gateway: its messages now queue apart (slow lane)", source)
        for source in sorted(back):
            log.info("device %s is quiet again: back in the main lane", source)
        metrics.LANE_MOVES.labels(to="slow").inc(len(gone))
        metrics.LANE_MOVES.labels(to="main").inc(len(back))
        metrics.SLOW_LANE_DEVICES.set(len(slowed))
        self._slowed = slowed
