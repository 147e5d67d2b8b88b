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

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError

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
    NOT_ON_DUTY = "not_on_duty"  # the guard is not on the roster now
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
    BAD_TIMESTAMP = "bad_timestamp"  # `ts` missing, malformed, without an offset, in the wrong unit or year
    KIND_MISMATCH = "kind_mismatch"  # a reading's `kind` is not the sending sensor's kind
    ID_CONFLICT = "id_conflict"  # the device reused a message id for a different message


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


#: The years a device's `ts` may name. Outside them it is no clock drift: it is a wrong unit
#: (seconds read as milliseconds give 1970) or a clock that was never set, which only the
#: installer can fix, so the message is refused with a reason saying so.
TS_MIN = datetime(2000, 1, 1, tzinfo=UTC)
TS_MAX = datetime(2100, 1, 1, tzinfo=UTC)
_MS_MIN, _MS_MAX = int(TS_MIN.timestamp() * 1000), int(TS_MAX.timestamp() * 1000)
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?$")
_OTHER_UNITS = ((1000, 1, "seconds: multiply by 1000"), (1, 1000, "microseconds: divide by 1000"),
                (1, 1_000_000, "nanoseconds: divide by 1,000,000"))  # fmt: skip


def parse_ts(value: Any) -> datetime:
    """RFC 3339 with an explicit offset, or integer Unix epoch milliseconds, in the years 2000–2099.

    Every refusal says what the installer must change. A time without an offset is refused, not
    guessed: read as the site's local time, a device that sends UTC without the `Z` would be off
    by the site's UTC offset, in the past, where an offline queue makes late taps look normal.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("ts must be RFC 3339 text with an offset or integer epoch milliseconds")
    if isinstance(value, int):
        return _from_epoch_ms(value)
    text = value.strip()
    m = _RFC3339.match(text)
    if m is None:
        hint = " (send the number unquoted)" if text.isdigit() else ""
        raise ValueError(f"ts must be RFC 3339 with an offset, e.g. 2026-11-28T08:05:11+08:00{hint}")
    if m["offset"] is None:
        raise ValueError(
            "ts has no UTC offset, so it is ambiguous: add one, e.g. 2026-11-28T08:05:11+08:00 or ...Z for UTC"
        )
    try:
        at = datetime.fromisoformat(text.replace("z", "Z")).astimezone(UTC)
    except ValueError as exc:  # 2026-13-40
        raise ValueError(f"ts is not a valid date and time: {exc}") from None
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC time
        raise ValueError("ts is out of range: the device clock is not set (set it, e.g. by NTP)") from None
    if not TS_MIN <= at < TS_MAX:
        raise ValueError(f"ts year {at.year} is not 2000-2099: the device clock is not set (set it, e.g. by NTP)")
    return at


def _from_epoch_ms(value: int) -> datetime:
    if _MS_MIN <= value < _MS_MAX:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    shown = str(value) if abs(value) < 10**24 else "with this many digits"
    for times, by, fix in _OTHER_UNITS:  # integer arithmetic: a 400-digit ts must not overflow a float
        if _MS_MIN <= value * times // by < _MS_MAX:
            raise ValueError(f"ts {shown} looks like epoch {fix} (ts is Unix epoch milliseconds)")
    raise ValueError(
        f"ts {shown} is not epoch milliseconds of the years 2000-2099: "
        "the device clock is not set (set it, e.g. by NTP)"
    )


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


#: The payload schema of each inbound channel.
PAYLOADS: dict[str, type[_Payload]] = {
    "tap": TapPayload,
    "telemetry": TelemetryPayload,
    "event": EventPayload,
    "status": StatusPayload,
}


def same_message(channel: str, model: BaseModel, stored_payload: str) -> bool:
    """Whether a message whose id is already logged is that same message again (a redelivery or a
    re-send) or a different one reusing the id (a conflict).

    Same means the same under the contract: the same fields after parsing, so a device that
    re-serialises (another key order or spacing, `ts` as epoch ms instead of RFC 3339 for the same
    instant) is not in conflict with itself, and unknown fields, which are ignored, do not count.
    A stored payload that today's rules refuse (logged under older ones) cannot be the same as one
    they accept."""
    try:
        return PAYLOADS[channel].model_validate_json(stored_payload) == model
    except ValidationError:
        return False
