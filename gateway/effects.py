"""Typed effects of a committed batch: answers for readers, out/ events, and what happened.

Handlers return these instead of MQTT packets; the answer thread turns them into publications
after the commit, so a handler never knows topics' byte encodings or the broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.contract import ack_topic
from core.outbound import Outbound, ReaderAnswer
from gateway.messages import Rejected


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer for one reader, on its own ack topic."""

    site: str
    device: str
    answer: ReaderAnswer

    @property
    def topic(self) -> str:
        return ack_topic(self.site, self.device)


@dataclass(frozen=True, slots=True)
class Publication:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass
class Effects:
    """What one batch (or one handler's share of it) decided; merged across handlers."""

    replies: list[Reply] = field(default_factory=list)
    events: list[Outbound] = field(default_factory=list)
    duplicates: int = 0  # redelivered or re-sent messages given no new effect
    signins: int = 0
    signins_refused: int = 0
    quarantined: list[Rejected] = field(default_factory=list)  # newly kept; repeats are duplicates

    def merge(self, other: Effects) -> Effects:
        self.replies += other.replies
        self.events += other.events
        self.duplicates += other.duplicates
        self.signins += other.signins
        self.signins_refused += other.signins_refused
        self.quarantined += other.quarantined
        return self
