"""How the edges are joined in one process: the HTTP edge's live hub fed by the MQTT edge."""

from __future__ import annotations

from collections.abc import Callable

from core.config import Settings
from gateway.live_source import LiveSource
from server.live import FeedSource, LiveHub


def live_source(settings: Settings) -> Callable[[LiveHub], FeedSource]:
    """The live feed's source: the broker's out/ topics, validated, into the API's hub."""

    def build(hub: LiveHub) -> FeedSource:
        return LiveSource(settings, hub.publish_threadsafe)

    return build
