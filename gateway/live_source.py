"""The broker side of the live feed: out/ events from `patrol/v1/+/out/#`, validated, handed on.

The API listens on the broker rather than to the gateway in memory, so the feed works the same
whether the gateway runs in the API's process (`patrol serve`) or elsewhere (`patrol gateway`).
Only messages that validate as out/ events on the topic that should carry them are handed on:
anything else (a client publishing under out/, the embedded broker replaying unrelated retained
messages) never reaches a browser.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

from core.config import Settings
from core.contract import PREFIX
from core.outbound import LiveEvent, is_out_topic, parse_out
from gateway import metrics
from gateway.messages import Received
from gateway.mqtt_link import MqttLink

log = logging.getLogger(__name__)
OUT_FILTER = f"{PREFIX}/+/out/#"
Deliver = Callable[[str, Sequence[LiveEvent]], None]  # one broker message's events at once


class LiveSource:
    """A plain subscriber (no persistent session, no manual acks, no gateway metrics)."""

    def __init__(self, settings: Settings, deliver: Deliver) -> None:
        self._deliver = deliver
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
        parsed = parse_out(msg.topic, msg.payload)
        if parsed is None:
            if is_out_topic(msg.topic):  # someone else publishing under out/ is worth an operator's look
                metrics.LIVE_IGNORED.inc()
            log.debug("not an out/ event, not forwarded: %s", msg.topic)
            return
        site, events = parsed
        self._deliver(site, events)
