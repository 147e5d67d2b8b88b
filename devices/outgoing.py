"""A message a simulated device sends: the topic, the JSON payload, QoS and retain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: dict[str, Any]
    qos: int = 1
    retain: bool = False

    def encoded(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":")).encode()


def iso_ms(ts: datetime) -> str:
    """A device timestamp as the contract takes it: RFC 3339 in UTC, to the millisecond."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds")
