"""The live feed: events from `patrol/v1/+/out/#` fanned out to WebSocket clients.

The API listens on the broker rather than to the gateway in memory, so it works the same
whether the gateway runs in this process (`patrol serve`) or elsewhere (`patrol gateway`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import paho.mqtt.client as mqtt
from prometheus_client import Counter

from core.config import Settings
from core.contract import PREFIX
from gateway.messages import Received
from gateway.mqtt_link import MqttLink

log = logging.getLogger(__name__)
OUT_FILTER = f"{PREFIX}/+/out/#"
LIVE_DROPPED = Counter("patrol_live_events_dropped_total", "Live-feed events a slow WebSocket client never got")
CLIENT_QUEUE = 1000


class LiveHub:
    def __init__(self) -> None:
        self._clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish_threadsafe(self, event: dict[str, Any]) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fanout, event)

    def _fanout(self, event: dict[str, Any]) -> None:
        for q in self._clients:
            if q.full():  # a slow browser loses its oldest events, never the gateway's time
                q.get_nowait()
                LIVE_DROPPED.inc()
            q.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(CLIENT_QUEUE)
        self._clients.add(q)
        try:
            yield q
        finally:
            self._clients.discard(q)


class LiveSource:
    """Subscribes to the out/ topics and feeds the hub; a plain client, no persistent session."""

    def __init__(self, settings: Settings, hub: LiveHub) -> None:
        self._hub = hub
        self._link = MqttLink(
            settings,
            self._on_message,
            ((OUT_FILTER, 0),),
            client_id=f"patrol-api-{uuid.uuid4().hex[:8]}",
            persistent=False,
            manual_ack=False,
        )

    def start(self) -> None:
        self._link.start()

    def stop(self) -> None:
        self._link.stop()

    def _on_message(self, msg: Received) -> None:
        if not mqtt.topic_matches_sub(OUT_FILTER, msg.topic):
            return  # the embedded broker (amqtt) also replays unrelated retained messages
        try:
            event = json.loads(msg.payload)
        except ValueError:
            log.warning("ignoring non-JSON event on %s", msg.topic)
            return
        if not isinstance(event, dict):
            return
        site = msg.topic.split("/")[2]
        # the gateway publishes sign-ins a batch at a time; browsers get them one by one
        items = event.get("items") if event.get("type") == "signins" else [event]
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                item.setdefault("site", site)
                self._hub.publish_threadsafe(item)
