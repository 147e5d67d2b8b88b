"""What the product says back: the reader's answer and the events under `patrol/v1/{site}/out/…`.

One set of models for the gateway that publishes them, the live feed that forwards them (only what
validates here reaches a browser) and the API that shows the same things (docs/mqtt-contract.md).
Extend by adding event types or optional fields, never by changing what a field means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from core.contract import ID_PATTERN, PREFIX


class Name(BaseModel):
    """A name in both languages the staff use."""

    model_config = ConfigDict(frozen=True)
    zh: str
    en: str


class ReaderAnswer(BaseModel):
    """The verdict on a tap, on `…/reader/{device}/ack`, so the reader can beep green or red."""

    model_config = ConfigDict(frozen=True)
    id: str | None
    ok: bool
    reason: str | None = None
    checkpoint: str | None = None
    checkpoint_en: str | None = None
    next: str | None = None  # the checkpoint to walk to next (rounds), in Chinese; `next_en` in English
    next_en: str | None = None
    guard: str | None = None
    message: dict[str, str] = Field(default_factory=dict)
    #: Only when the reader's clock is off: its `ts` minus the server's receipt time, in seconds
    #: (negative: behind), beyond the clock window; the sign-in then counts at the receipt time.
    clock_skew_s: int | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


class _Event(BaseModel):
    """An out/ event knows its own topic under `out/`, whether the broker keeps it (retained) and
    whether fields without a value are left out instead of sent as null."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    omit_none: ClassVar[bool] = False
    retained: ClassVar[bool] = False

    def topic_path(self) -> tuple[str, ...]:
        raise NotImplementedError

    def split(self, parts: int) -> list[Self]:
        """The event as up to `parts` smaller events of the same kind, when it is too large for one
        message; an event that cannot be split stays whole."""
        return [self]


class SignInEvent(_Event):
    """One sign-in (签到) with the verdict its reader was given."""

    type: Literal["signin"] = "signin"
    device: str
    guard: str | None
    guard_name: Name | None
    checkpoint: str | None
    checkpoint_name: Name | None
    tag_uid: str
    ok: bool
    reason: str | None
    tapped_at: datetime  # the time the rules use: the reader's `ts`, or the receipt time if its clock is off
    received_at: datetime
    device_ts: datetime | None = None  # the reader's own `ts`, as sent
    clock_skew_s: int | None = None  # set when the reader's clock was not believed (see ReaderAnswer)
    round_id: int | None = None  # the round the tap was judged against (sites with patrol plans)
    result: str | None = None  # early / on_time / late, for an ok tap of a round
    next_checkpoint: str | None = None  # where the guard goes next (location code)


class SignInBatch(_Event):
    """The new sign-ins of one committed batch, on `out/signins`: one message per batch, not per
    tap, because per-tap messages doubled the gateway's MQTT work."""

    type: Literal["signins"] = "signins"
    items: list[SignInEvent]

    def topic_path(self) -> tuple[str, ...]:
        return ("signins",)

    def split(self, parts: int) -> list[Self]:
        size = -(-len(self.items) // max(1, min(parts, len(self.items))))  # ceiling division
        return [self.model_copy(update={"items": self.items[i : i + size]}) for i in range(0, len(self.items), size)]


class DeviceStatusEvent(_Event):
    """A device's newest status, retained on `out/device/{device}/status`; what the device did
    not report is left out."""

    omit_none: ClassVar[bool] = True
    retained: ClassVar[bool] = True
    type: Literal["device_status"] = "device_status"
    device: str
    kind: str
    online: bool
    status_at: datetime
    battery_pct: int | None = None
    rssi: int | None = None
    firmware: str | None = None

    def topic_path(self) -> tuple[str, ...]:
        return ("device", self.device, "status")


class AlarmEvent(_Event):
    """A change of one alarm, on `out/alarm/{device}/{alarm_type}`: raised, rose, fell, repeated,
    cleared, acknowledged, flapping, snoozed. Carries the whole alarm as it now is, so a screen
    needs no second request; a flapping alarm's repeats are sent with `quiet` set."""

    type: Literal["alarm"] = "alarm"
    change: str
    id: int
    device: str
    alarm_type: str
    severity: str
    peak_severity: str
    active: bool
    acknowledged: bool
    count: int
    last_value: dict[str, Any] = Field(default_factory=dict)
    opened_at: datetime
    last_seen: datetime
    cleared_at: datetime | None = None
    acknowledged_by: str | None = None
    comment: str | None = None
    flapping: bool = False
    quiet: bool = False
    ticket_id: int | None = None
    location: Name | None = None
    building: str | None = None
    floor: int | None = None
    device_name: Name | None = None  # what a screen calls the device, so it needs no second request
    at: datetime

    def topic_path(self) -> tuple[str, ...]:
        return ("alarm", self.device, self.alarm_type)


class TicketEvent(_Event):
    """A change of one ticket, on `out/ticket/{id}`: opened, alarm attached, step checked,
    acknowledged, escalated, reminder, alarm cleared, closed, muster (P5 §1). `recipients` are
    the staff codes notified by an escalation, a reminder or a muster."""

    type: Literal["ticket"] = "ticket"
    change: str
    id: int
    procedure: str
    title: Name
    severity: str
    state: str
    departments: list[str]
    first_responder: str | None = None
    escalation_level: str | None = None
    recipients: list[str] = Field(default_factory=list)
    deadlines: dict[str, datetime] = Field(default_factory=dict)
    device: str | None = None
    location: Name | None = None
    actor: str
    at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)

    def topic_path(self) -> tuple[str, ...]:
        return ("ticket", str(self.id))


class RoundPointState(BaseModel):
    """A round's checkpoint as a screen shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    checkpoint: str
    name: Name | None = None
    result: str  # pending / early / on_time / late / missed
    due_at: datetime
    signed_at: datetime | None = None


class RoundEvent(_Event):
    """A change of one patrol round, on `out/round/{id}`: progress (a sign-in counted), missed (a
    checkpoint's window shut without a valid sign-in: `missed` names them, sent once), ended,
    handed_over, alert_closed. Carries the round as it now is."""

    type: Literal["round"] = "round"
    change: str
    id: int
    plan: str
    route: str
    area: str
    guard: str
    state: str
    starts_at: datetime
    ends_at: datetime
    completion_pct: float
    lateness_s: int
    next_checkpoint: str | None = None
    missed: list[str] = Field(default_factory=list)
    points: list[RoundPointState] = Field(default_factory=list)
    alert_open: bool = False
    actor: str = "system"
    at: datetime

    def topic_path(self) -> tuple[str, ...]:
        return ("round", str(self.id))


OutEventType = SignInBatch | DeviceStatusEvent | AlarmEvent | TicketEvent | RoundEvent
OutEvent = Annotated[OutEventType, Field(discriminator="type")]
#: what a browser gets: sign-ins one at a time, everything else as published
LiveEvent = SignInEvent | DeviceStatusEvent | AlarmEvent | TicketEvent | RoundEvent
_OUT_EVENT: TypeAdapter[OutEventType] = TypeAdapter(OutEvent)


def out_topic(site: str, *parts: str) -> str:
    return "/".join((PREFIX, site, "out", *parts))


def event_topic(site: str, event: OutEventType) -> str:
    return out_topic(site, *event.topic_path())


#: The largest out/ message: the contract's payload limit (CONTRACT.md "Payloads": 16 KiB), which
#: deploy/mosquitto/mosquitto.conf (`message_size_limit`) and the embedded broker enforce on everyone.
MAX_OUT_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Outbound:
    """An event for a site's out/ topics, decided in a transaction and published after its commit."""

    site: str
    event: OutEventType

    @property
    def topic(self) -> str:
        return event_topic(self.site, self.event)

    @property
    def retain(self) -> bool:
        return self.event.retained

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON (names stay readable Chinese), serialised by pydantic-core: this runs
        for every tap, and is several times faster than dumping to dicts and then to JSON."""
        return self.event.model_dump_json(exclude_none=self.event.omit_none).encode("utf-8")

    def payloads(self, max_bytes: int = MAX_OUT_BYTES) -> list[bytes]:
        """The event as one message, or as several when it is over `max_bytes` (a batch of 2,000
        sign-ins is ~700 KB): the contract's limit is enforced by the shipped broker on every
        client, and Mosquitto disconnects an MQTT 5 client that publishes more."""
        data = self.to_bytes()
        if len(data) <= max_bytes:
            return [data]
        parts = self.event.split(-(-len(data) * 4 // (max_bytes * 3)))  # aim at 3/4 of the limit
        if len(parts) < 2:
            return [data]  # cannot be split: the broker will refuse it, and the link logs that
        return [p for part in parts for p in Outbound(self.site, part).payloads(max_bytes)]


_OUT_TOPIC = re.compile(rf"^{PREFIX}/(?P<site>{ID_PATTERN})/out/(?P<rest>.+)$")


def is_out_topic(topic: str) -> bool:
    return _OUT_TOPIC.match(topic) is not None


def parse_out(topic: str, payload: bytes) -> tuple[str, list[LiveEvent]] | None:
    """(site, events for browsers) from a message on an out/ topic; None for anything that is not
    a valid out/ event on the topic that should carry it, so nobody can inject text into screens."""
    m = _OUT_TOPIC.match(topic)
    if m is None:
        return None
    try:
        event = _OUT_EVENT.validate_json(payload)
    except ValidationError:
        return None
    site = m["site"]
    if event_topic(site, event) != topic:
        return None
    if isinstance(event, SignInBatch):
        return site, list(event.items)
    return site, [event]
