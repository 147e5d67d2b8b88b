"""The live feed's fan-out: validated out/ events to every WebSocket client, without blocking.

What feeds it (a subscriber on the broker's out/ topics) is wired in by the application, so the
HTTP edge does not depend on the MQTT edge.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from prometheus_client import Counter

from core.outbound import LiveEvent

LIVE_DROPPED = Counter("patrol_live_events_dropped_total", "Live-feed events a slow WebSocket client never got")
CLIENT_QUEUE = 1000


class FeedSource(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def as_message(site: str, event: LiveEvent) -> dict[str, Any]:
    """What a browser receives: the event as it is published under out/ (fields left out alike),
    with its site."""
    return {**event.model_dump(mode="json", exclude_none=event.omit_none), "site": site}


class LiveHub:
    def __init__(self) -> None:
        self._clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def clients(self) -> int:
        """WebSocket clients subscribed now (a client that left must not stay counted)."""
        return len(self._clients)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish_threadsafe(self, site: str, event: LiveEvent) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fanout, as_message(site, event))

    def _fanout(self, message: dict[str, Any]) -> None:
        for q in self._clients:
            if q.full():  # a slow browser loses its oldest events, never the gateway's time
                q.get_nowait()
                LIVE_DROPPED.inc()
            q.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(CLIENT_QUEUE)
        self._clients.add(q)
        try:
            yield q
        finally:
            self._clients.discard(q)
