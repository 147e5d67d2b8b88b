"""What the pipeline needs of a broker connection; `MqttLink` is the real one, tests use a fake.

Keeping the pipeline behind this small interface lets the whole gateway run in-process in
component tests (messages injected, acks and publications recorded), as Home Assistant's MQTT
tests do, while the integration tests keep the real broker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from gateway.messages import Received

Sink = Callable[[Received], None]
Filters = tuple[tuple[str, int], ...]


class Link(Protocol):
    subscribed: threading.Event

    @property
    def fatal_error(self) -> str | None:
        """Why the broker connection cannot work (refused credentials): the process stops with it."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def ack(self, msg: Received) -> None:
        """PUBACK a message whose effect is committed (on the connection that delivered it)."""
        ...

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None: ...


#: Builds the gateway's link once the gateway knows where its messages go and what it subscribes to.
LinkFactory = Callable[[Sink, Filters], Link]
