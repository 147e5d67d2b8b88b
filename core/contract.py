"""Device contract v1 (docs/mqtt-contract.md): topics, payload schemas and tap verdict reasons.

The one place that knows the wire format; the gateway, the simulators and the tests import it.
Extend only by adding optional fields or topics, never by changing what is here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

MAX_PAYLOAD_BYTES = 16 * 1024
ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
PREFIX = "patrol/v1"

#: What the gateway subscribes to, at QoS 1: one filter for every topic under the prefix, so a
#: stray topic is quarantined rather than silently missed. Not several overlapping filters: over
#: MQTT 5 a broker may deliver a message once per matching subscription.
SUBSCRIPTIONS: tuple[tuple[str, int], ...] = ((f"{PREFIX}/#", 1),)

_TOPIC = re.compile(
    rf"^{PREFIX}/(?P<site>{ID_PATTERN})/(?P<role>reader|sensor|device)/(?P<device>{ID_PATTERN})/(?P<channel>[a-z]+)$"
)
INBOUND_CHANNELS = {("reader", "tap"), ("sensor", "telemetry"), ("sensor", "event"), ("device", "status")}


class Reason(StrEnum):
    """Why a tap was refused (`ok: false`); readers show a red light and the reason."""

    UNKNOWN_TAG = "unknown_tag"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    TOO_FAST = "too_fast"
    OUTSIDE_WINDOW = "outside_window"
    NO_ACTIVE_ROUND = "no_active_round"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED = "replayed"


class RejectReason(StrEnum):
    """Why a message was quarantined instead of processed."""

    BAD_JSON = "bad_json"
    BAD_SCHEMA = "bad_schema"
    TOO_LARGE = "too_large"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_TOPIC = "unknown_topic"
    WRONG_DEVICE_KIND = "wrong_device_kind"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    role: str
    device: str
    channel: str

    @property
    def inbound(self) -> bool:
        return (self.role, self.channel) in INBOUND_CHANNELS


def is_own_output(topic: str) -> bool:
    """Reader acks and out/ events are what the gateway itself publishes: not input."""
    parts = topic.split("/")
    return len(parts) >= 4 and (parts[3] == "out" or (parts[3] == "reader" and parts[-1] == "ack" and len(parts) == 6))


def parse_topic(topic: str) -> Topic | None:
    m = _TOPIC.match(topic)
    return Topic(**m.groupdict()) if m else None


def tap_topic(site: str, device: str) -> str:
    return f"{PREFIX}/{site}/reader/{device}/tap"


def ack_topic(site: str, device: str) -> str:
    return f"{PREFIX}/{site}/reader/{device}/ack"


def telemetry_topic(site: str, device: str) -> str:
    return f"{PREFIX}/{site}/sensor/{device}/telemetry"


def event_topic(site: str, device: str) -> str:
    return f"{PREFIX}/{site}/sensor/{device}/event"


def status_topic(site: str, device: str) -> str:
    return f"{PREFIX}/{site}/device/{device}/status"


def parse_ts(value: Any) -> datetime:
    """RFC 3339 with an explicit offset, or integer Unix epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError("ts must be RFC 3339 text or integer epoch milliseconds, not a boolean")
    if isinstance(value, int):
        if not 0 < value < 32503680000000:
            raise ValueError("ts in epoch milliseconds is out of range")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", text):
            raise ValueError("ts must be RFC 3339 with an offset, e.g. 2026-11-28T08:05:11+08:00")
        return datetime.fromisoformat(text.replace("z", "Z")).astimezone(UTC)
    raise ValueError("ts must be RFC 3339 text or integer epoch milliseconds")


Timestamp = Annotated[datetime, BeforeValidator(parse_ts)]
MessageId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]  # no control chars
_HEX_UID = r"^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{20})$"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Sdm(_Payload):
    picc: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{32}$")]
    cmac: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$")]


class TapPayload(_Payload):
    id: MessageId
    ts: Timestamp
    uid: Annotated[str, Field(pattern=_HEX_UID)]
    sdm: Sdm | None = None


class WaterLeakValues(_Payload):
    wet: StrictBool
    level_mm: float | None = None


class GasValues(_Payload):
    lel_pct: float
    co_ppm: float | None = None


class ElevatorValues(_Payload):
    state: Literal["normal", "fault"]
    fault_code: str | None = None
    floor: int | None = None
    door: Literal["open", "closed"] | None = None
    occupied: StrictBool | None = None


class ElectricLeakValues(_Payload):
    leak_ma: float


class SmokeValues(_Payload):
    alarm: StrictBool
    obscuration_pct: float | None = None


class DoorValues(_Payload):
    open: StrictBool


SENSOR_VALUES: dict[str, type[_Payload]] = {
    "water_leak": WaterLeakValues,
    "gas": GasValues,
    "elevator": ElevatorValues,
    "electric_leak": ElectricLeakValues,
    "smoke": SmokeValues,
    "door": DoorValues,
}
SensorKind = Literal["water_leak", "gas", "elevator", "electric_leak", "smoke", "door"]


class TelemetryPayload(_Payload):
    id: MessageId
    ts: Timestamp
    kind: SensorKind
    values: dict[str, Any]

    def typed_values(self) -> _Payload:
        """The readings checked against the kind's schema; raises pydantic.ValidationError."""
        return SENSOR_VALUES[self.kind].model_validate(self.values)


class EventPayload(_Payload):
    id: MessageId
    ts: Timestamp
    kind: SensorKind
    state: Literal["alarm", "clear"]
    code: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class StatusPayload(_Payload):
    online: StrictBool
    ts: Timestamp | None = None
    battery_pct: Annotated[int, Field(ge=0, le=100)] | None = None
    rssi: int | None = None
    fw: str | None = None
