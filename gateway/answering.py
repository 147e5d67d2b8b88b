"""The answer thread: publish each committed batch's answers and events, then ack it to the broker.

Answers always go out before their batch's acks (a crash between them means a redelivery and the
same answer again, never a reader left without one). Within that rule, answers to refused input
(a device flooding garbage gets a red answer for every message) wait behind everything else that
is committed: the answers of every batch waiting here are published first, then the refusals in
chunks, checking for newly committed batches between chunks, and only while the link's own queue
of unacknowledged publications is short (`Backlogged`): otherwise paho's outgoing FIFO would hold
thousands of red answers in front of the next green one. So a flood's red answers delay only the
flooder, as its messages do in the inbox (`gateway.batching.FairInbox`).

Batches are acked in commit order. Under the inbox's round-robin that is not always the order the
broker delivered them in; brokers match a PUBACK to its packet id (Mosquitto, EMQX), though MQTT
§4.6 asks a receiver to acknowledge in order (docs/metrics.md says more).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from core.contract import RejectReason
from gateway import metrics
from gateway.effects import Effects, Publication
from gateway.link import Link
from gateway.messages import Received

log = logging.getLogger(__name__)
BACKLOG = 8  # committed batches held (queued + in hand): past it the worker waits (back-pressure)
CHUNK = 50  # refusals published between two looks for newly committed batches
LINK_BACKLOG = 2000  # refusals wait while the link has this many publications unacknowledged...
HOLD_S = 0.5  # ...but no longer than this (a broker that went away must not stall the acks)
POLL_S = 0.002  # how often a held refusal looks again (paho gives no signal when its queue drains)
_REFUSED = frozenset(r.value for r in RejectReason)


@dataclass
class Committed:
    """A committed batch: the messages to ack and what to publish first, serialised (the queue
    holds bytes, not thousands of model objects)."""

    batch: list[Received]
    urgent: list[Publication]  # answers to accepted messages, out/ events
    refusals: list[Publication] = field(default_factory=list)  # answers to refused input

    @classmethod
    def of(cls, batch: list[Received], effects: Effects) -> Committed:
        urgent: list[Publication] = []
        refusals: list[Publication] = []
        for r in effects.replies:
            refused = not r.answer.ok and r.answer.reason in _REFUSED
            (refusals if refused else urgent).append(Publication(r.topic, r.answer.to_bytes()))
        urgent += [Publication(o.topic, data, retain=o.retain) for o in effects.events for data in o.payloads()]
        return cls(batch, urgent, refusals)


@runtime_checkable
class Backlogged(Protocol):
    """A link that can say how many of its publications the broker has not acknowledged yet."""

    def backlog(self) -> int: ...


class RefusalCap:
    """At most `per_second` red answers a second to one reader's ack topic
    (Settings.refused_answers_per_reader_s, 20); the rest are counted (`patrol_answers_shed_total`),
    not sent. A guard cannot tap 20 times a second, so only a flood loses answers, and it loses
    almost all of them: answering each of 50,000 garbage messages would hold their acks behind
    50,000 publications and fill the broker's window for everyone. Green answers are never capped."""

    def __init__(self, per_second: int = 20, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._per_second = per_second
        self._monotonic = monotonic
        self._windows: dict[str, tuple[int, int]] = {}  # ack topic → (second, answers sent in it)

    def admit(self, publications: Sequence[Publication]) -> list[Publication]:
        second = int(self._monotonic())
        if len(self._windows) > 10_000:  # bounded: forget the readers of earlier seconds
            self._windows = {t: w for t, w in self._windows.items() if w[0] == second}
        admitted: list[Publication] = []
        for pub in publications:
            at, sent = self._windows.get(pub.topic, (second, 0))
            if at != second:
                at, sent = second, 0
            if sent < self._per_second:
                admitted.append(pub)
                sent += 1
            self._windows[pub.topic] = (at, sent)
        if len(admitted) < len(publications):
            metrics.ANSWERS_SHED.inc(len(publications) - len(admitted))
        return admitted


class Answerer:
    def __init__(self, link: Link, cap: RefusalCap | None = None) -> None:
        self._link = link
        self._cap = cap or RefusalCap()
        self._backlog = link.backlog if isinstance(link, Backlogged) else (lambda: 0)
        self._queue: queue.Queue[Committed | None] = queue.Queue(maxsize=BACKLOG)
        self._thread = threading.Thread(target=self._run, name="gateway-answers", daemon=True)
        self._in_hand: deque[Committed] = deque()  # urgent answers sent; refusals and acks to go
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def put(self, committed: Committed) -> None:
        """Blocks while BACKLOG batches are waiting: the worker commits no faster than we answer."""
        self._queue.put(committed)

    def stop(self, timeout: float) -> None:
        """Answer and ack everything committed so far, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def deliver(self, committed: Committed) -> None:
        """One batch on the caller's thread (`Gateway.pump`): answers, refusals, then acks."""
        self._publish(committed.urgent)
        self._publish(self._cap.admit(committed.refusals))
        self._ack(committed.batch)

    def _run(self) -> None:
        held_since: float | None = None
        while True:
            while not self._stopping and len(self._in_hand) < BACKLOG:
                if not self._take(None if not self._in_hand else 0.0):
                    break
            if not self._in_hand:
                if self._stopping:
                    return
                continue
            first = self._in_hand[0]
            if first.refusals and self._backlog() >= LINK_BACKLOG:
                now = time.monotonic()  # real time: waiting for the network, not a time rule
                held_since = now if held_since is None else held_since
                if now - held_since < HOLD_S:
                    if not self._stopping and len(self._in_hand) < BACKLOG:
                        self._take(POLL_S)  # a newly committed batch's answers go out at once
                    else:
                        time.sleep(POLL_S)
                    continue
            held_since = None
            chunk, first.refusals = first.refusals[:CHUNK], first.refusals[CHUNK:]
            self._publish(self._cap.admit(chunk))
            if not first.refusals:
                self._in_hand.popleft()
                self._ack(first.batch)

    def _take(self, timeout: float | None) -> bool:
        """Take one committed batch (waiting up to `timeout`, None: until one comes) and publish
        its urgent answers; False when there was none or it was the stop signal."""
        try:
            item = self._queue.get(timeout=timeout) if timeout != 0.0 else self._queue.get_nowait()
        except queue.Empty:
            return False
        if item is None:
            self._stopping = True
            return False
        self._publish(item.urgent)
        self._in_hand.append(item)
        return True

    def _publish(self, publications: Sequence[Publication]) -> None:
        """One publication that cannot be sent is logged and skipped: the effects are committed,
        and holding the acks back would stall the session."""
        for pub in publications:
            try:
                self._link.publish(pub.topic, pub.payload, pub.qos, pub.retain)
            except Exception:
                log.exception("could not publish to %s (%d bytes)", pub.topic, len(pub.payload))

    def _ack(self, batch: list[Received]) -> None:
        for msg in batch:
            try:
                self._link.ack(msg)
            except Exception:
                log.exception("could not ack mid=%s topic=%s", msg.mid, msg.topic)
