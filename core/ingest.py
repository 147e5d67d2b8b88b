"""Rules of ingestion that do not depend on a message's kind: who may publish on which channel,
which refusals are answered, what counts as the same message, which status is newer.

Pure functions over data; the gateway's decoder and handlers call them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime
from typing import TypeVar

from core.directory import READER_KINDS, SENSOR_KINDS

T = TypeVar("T")


def channel_fits(role: str, kind: str) -> bool:
    """Readers publish taps, sensors telemetry and events; any device publishes its status."""
    if role == "reader":
        return kind in READER_KINDS
    if role == "sensor":
        return kind in SENSOR_KINDS
    return role == "device"


def answers_reader(role: str | None, channel: str | None) -> bool:
    """A refused tap is answered on the reader's ack topic, so the guard sees red instead of
    nothing; refused telemetry, events and status are only kept and counted (CONTRACT.md)."""
    return role == "reader" and channel == "tap"


def first_of_each(items: Iterable[T], key: Callable[[T], Hashable]) -> list[T]:
    """The first copy of each message: a message sent twice in one batch has one effect."""
    seen: set[Hashable] = set()
    first: list[T] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            first.append(item)
    return first


def status_supersedes(held_at: datetime | None, new_at: datetime) -> bool:
    """Last write wins by observation time, so an old retained status (or a Last Will delivered
    late) never hides a newer one; an equal time wins, so a repeat is harmless."""
    return held_at is None or held_at <= new_at
