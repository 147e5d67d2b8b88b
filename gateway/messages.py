"""Frozen values passed from the MQTT network thread to the worker; nothing here imports paho."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.contract import RejectReason, Topic
from core.directory import DeviceEntry
from core.ingest import answers_reader


@dataclass(frozen=True, slots=True)
class Received:
    """A message as the broker delivered it; `mid` is what must be acked once its effect is committed."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    received_at: datetime
    generation: int = 0  # which broker connection delivered it: acks are only valid on that one
    lane: int = 0  # which of the gateway's sessions delivered it (gateway/lanes.py): acked on that one


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid message from a known device, ready to be applied."""

    raw: Received
    topic: Topic
    device: DeviceEntry
    msg_id: str | None
    model: Any  # the validated pydantic payload

    @property
    def channel(self) -> str:
        """tap | telemetry | event | status"""
        return self.topic.channel

    @property
    def device_ts(self) -> datetime | None:
        """When the device observed it (status messages may leave it out)."""
        ts: datetime | None = getattr(self.model, "ts", None)
        return ts


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message refused with a reason; it is quarantined, counted and, for a tap, answered."""

    raw: Received
    reason: RejectReason
    detail: str
    topic: Topic | None = None
    msg_id: str | None = None

    @property
    def answer_reader(self) -> bool:
        return self.topic is not None and answers_reader(self.topic.role, self.topic.channel)
