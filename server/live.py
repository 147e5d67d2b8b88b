"""The live feed's fan-out: validated out/ events to every WebSocket client, without blocking.

What feeds it (a subscriber on the broker's out/ topics) is wired in by the application, so the
HTTP edge does not depend on the MQTT edge.

Each broker message's events are serialised to JSON once, on the event loop (paho's network thread
only hands them over), and given to every client's queue as one delivery: at 2,000 events/s and 50
screens, serialising per client and queueing per event cost the API more than it could give
(bench/live_clients.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Counter

from core.outbound import LiveEvent

LIVE_DROPPED = Counter("patrol_live_events_dropped_total", "Live-feed events a slow WebSocket client never got")
CLIENT_QUEUE = 1000  # deliveries (one per broker message: a batch of sign-ins, or one event)


class FeedSource(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def as_message(site: str, event: LiveEvent) -> dict[str, Any]:
    """What a browser receives: the event as it is published under out/ (fields left out alike),
    with its site."""
    return {**event.model_dump(mode="json", exclude_none=event.omit_none), "site": site}


@dataclass(frozen=True)
class Delivery:
    """One broker message's events for the screens, each already a JSON text."""

    site: str
    texts: tuple[str, ...]


class ClientQueue(asyncio.Queue[Delivery]):
    """A client's deliveries; `gap` is set when its oldest were dropped, so it can be told to read again."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.gap = False


class LiveHub:
    def __init__(self) -> None:
        self._clients: set[ClientQueue] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def clients(self) -> int:
        """WebSocket clients subscribed now (a client that left must not stay counted)."""
        return len(self._clients)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish_threadsafe(self, site: str, events: Sequence[LiveEvent]) -> None:
        """From the subscriber (paho's network thread): only a hand-over to the event loop."""
        if self._loop is not None and not self._loop.is_closed() and events:
            self._loop.call_soon_threadsafe(self._fanout, site, events)

    def _fanout(self, site: str, events: Sequence[LiveEvent]) -> None:
        if not self._clients:
            return
        delivery = Delivery(
            site, tuple(json.dumps(as_message(site, e), ensure_ascii=False, separators=(",", ":")) for e in events)
        )
        for q in self._clients:
            if q.full():  # a slow browser loses its oldest events, never the gateway's time, and is told
                LIVE_DROPPED.inc(len(q.get_nowait().texts))
                q.gap = True
            q.put_nowait(delivery)

    @asynccontextmanager
    async def subscribe(self, size: int = CLIENT_QUEUE) -> AsyncIterator[ClientQueue]:
        q = ClientQueue(size)
        self._clients.add(q)
        try:
            yield q
        finally:
            self._clients.discard(q)
