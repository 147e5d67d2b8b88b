"""The embedded MQTT broker (amqtt) for one-machine use: no Mosquitto to install for the demo.

It runs in its own thread and event loop, bound to 127.0.0.1 only. It speaks MQTT 3.1.1 and
tops out near 5 k msg/s (FIELD-NOTES.md): for production use Mosquitto or EMQX (README).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedBroker:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-broker", daemon=True)
        self._broker: Any = None

    def start(self, timeout: float = 15.0) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._thread.start()

        async def _start() -> None:
            self._broker = Broker(config)
            await self._broker.start()

        try:
            asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout)
        except Exception as exc:  # amqtt wraps the OSError in its own BrokerError
            raise RuntimeError(
                f"cannot start the embedded MQTT broker on {self.host}:{self.port} ({exc}): "
                "stop what uses that port, or set PATROL_MQTT_URL to a running broker"
            ) from exc
        log.info("embedded MQTT broker listening on %s:%s", self.host, self.port)

    def stop(self, timeout: float = 10.0) -> None:
        if self._broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout)
            except Exception:
                log.exception("embedded broker did not shut down cleanly")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
