"""A broker stand-in for component tests: messages are injected, acks and publications recorded.

The gateway's pipeline runs against it in-process and on the test's thread (`Gateway.pump`), so
its rules are tested in simulated time on SQLite and PostgreSQL without a broker. The Mosquitto
integration tests keep testing the real link.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from core.clock import Clock
from gateway.link import Filters, Sink
from gateway.messages import Received


class FakeLink:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._sink: Sink | None = None
        self.filters: Filters = ()
        self.subscribed = threading.Event()
        self.fatal_error: str | None = None
        self.log: list[tuple[str, Any]] = []  # ("publish", (topic, payload, qos, retain)) | ("ack", mid), in order
        self._mid = 0

    def attach(self, sink: Sink, filters: Filters) -> FakeLink:
        """The gateway's link factory: `Gateway(..., link=fake.attach)`."""
        self._sink, self.filters = sink, filters
        return self

    def start(self) -> None:
        self.subscribed.set()

    def stop(self) -> None:
        self.subscribed.clear()

    def ack(self, msg: Received) -> None:
        self.log.append(("ack", msg.mid))

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.log.append(("publish", (topic, payload, qos, retain)))

    def inject(self, topic: str, payload: bytes | dict[str, Any], qos: int = 1, retain: bool = False) -> Received:
        """Deliver a message as the broker would (a redelivery is just the same bytes again)."""
        assert self._sink is not None, "attach the fake link to a gateway first"
        self._mid += 1
        data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        msg = Received(topic, data, qos, self._mid, retain, self._clock.now())
        self._sink(msg)
        return msg

    @property
    def acked(self) -> list[int]:
        return [mid for what, mid in self.log if what == "ack"]

    def published(self, suffix: str = "") -> list[tuple[str, dict[str, Any]]]:
        """(topic, decoded JSON) of what was published on topics ending with `suffix`, in order."""
        return [(p[0], json.loads(p[1])) for what, p in self.log if what == "publish" and p[0].endswith(suffix)]
