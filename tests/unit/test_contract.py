"""Device contract v1, line by line: topics, timestamps, payload schemas (no broker, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from core.contract import (
    PAYLOADS,
    EventPayload,
    StatusPayload,
    TapPayload,
    TelemetryPayload,
    Topic,
    is_own_output,
    parse_topic,
    parse_ts,
    same_message,
)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("patrol/v1/liyuan/reader/r17/tap", Topic("liyuan", "reader", "r17", "tap")),
        ("patrol/v1/liyuan/sensor/gas-b3/telemetry", Topic("liyuan", "sensor", "gas-b3", "telemetry")),
        ("patrol/v1/liyuan/sensor/lift_1/event", Topic("liyuan", "sensor", "lift_1", "event")),
        ("patrol/v1/liyuan/device/r17/status", Topic("liyuan", "device", "r17", "status")),
        ("patrol/v1/liyuan/reader/r17", None),
        ("patrol/v2/liyuan/reader/r17/tap", None),
        ("patrol/v1/li yuan/reader/r17/tap", None),
        ("patrol/v1/" + "s" * 65 + "/reader/r17/tap", None),
        ("patrol/v1/liyuan/camera/c1/tap", None),
    ],
)
def test_parse_topic(topic: str, expected: Topic | None) -> None:
    assert parse_topic(topic) == expected


@pytest.mark.parametrize(
    ("topic", "inbound"),
    [
        ("patrol/v1/s/reader/d/tap", True),
        ("patrol/v1/s/sensor/d/telemetry", True),
        ("patrol/v1/s/sensor/d/event", True),
        ("patrol/v1/s/device/d/status", True),
        ("patrol/v1/s/reader/d/telemetry", False),
        ("patrol/v1/s/sensor/d/tap", False),
        ("patrol/v1/s/reader/d/foo", False),
    ],
)
def test_only_contract_channels_are_inbound(topic: str, inbound: bool) -> None:
    parsed = parse_topic(topic)
    assert parsed is not None and parsed.inbound is inbound


@pytest.mark.parametrize(
    ("topic", "own"),
    [
        ("patrol/v1/s/reader/d/ack", True),
        ("patrol/v1/s/out/signin", True),
        ("patrol/v1/s/out/device/d/status", True),
        ("patrol/v1/s/reader/d/tap", False),
        ("patrol/v1/s/sensor/d/ack", False),
    ],
)
def test_own_output_is_recognised(topic: str, own: bool) -> None:
    assert is_own_output(topic) is own


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-28T08:05:11.250+08:00", datetime(2026, 11, 28, 0, 5, 11, 250000, tzinfo=UTC)),
        ("2026-11-28T00:05:11Z", datetime(2026, 11, 28, 0, 5, 11, tzinfo=UTC)),
        (1764288311250, datetime(2025, 11, 28, 0, 5, 11, 250000, tzinfo=UTC)),
    ],
)
def test_parse_ts_accepts_rfc3339_with_offset_and_epoch_ms(value: object, expected: datetime) -> None:
    assert parse_ts(value) == expected


@pytest.mark.parametrize("value", ["2026-11-28T08:05:11", "yesterday", 1.5e12, True, -5, None, "2026-13-40T00:00:00Z"])
def test_parse_ts_refuses_naive_or_malformed(value: object) -> None:
    with pytest.raises(ValueError):
        parse_ts(value)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (1764288311, "looks like epoch seconds: multiply by 1000"),  # was stored as 1970-01-21
        (1764288311250000, "looks like epoch microseconds: divide by 1000"),
        (1764288311250000000, "looks like epoch nanoseconds"),
        (0, "the device clock is not set"),
        (946684799999, "the device clock is not set"),  # 1999-12-31T23:59:59.999Z
        (4102444800000, "the device clock is not set"),  # 2100-01-01
        (10**400, "with this many digits"),  # no float overflow, no 400-digit message
        ("1970-01-01T00:00:00Z", "year 1970 is not 2000-2099"),
        ("2100-01-01T00:00:00+00:00", "year 2100 is not 2000-2099"),
        ("0001-01-01T00:00:00+01:00", "out of range"),  # no UTC time at all: no OverflowError
        ("2026-11-28T08:05:11", "no UTC offset"),
        ("2026-11-28T08:05:11.250", "no UTC offset"),
        ("1764288311250", "send the number unquoted"),
        ("2026-13-40T00:00:00Z", "not a valid date"),
        (1764288311250.0, "integer epoch milliseconds"),
    ],
)
def test_parse_ts_refusals_tell_the_installer_what_to_fix(value: object, says: str) -> None:
    """Issue 6 item 4: a ts in seconds, a clock never set, a time without an offset are refused,
    each with the fix in the message (it becomes the quarantine detail of a `bad_timestamp`)."""
    with pytest.raises(ValueError, match="ts") as caught:
        parse_ts(value)
    assert says in str(caught.value)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (946684800000, datetime(2000, 1, 1, tzinfo=UTC)),  # an RTC reset to 2000 is kept, as clock skew
        (4102444799999, datetime(2099, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
        ("2099-12-31T23:59:59Z", datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2026-11-28 08:05:11+08:00", datetime(2026, 11, 28, 0, 5, 11, tzinfo=UTC)),
        ("2026-11-28t00:05:11z", datetime(2026, 11, 28, 0, 5, 11, tzinfo=UTC)),
    ],
)
def test_parse_ts_accepts_the_years_2000_to_2099(value: object, expected: datetime) -> None:
    assert parse_ts(value) == expected


TAP_A = {"id": "r-1", "ts": "2026-11-28T08:05:11.250+08:00", "uid": "04A1B2C3D4E5F6"}


@pytest.mark.parametrize(
    ("stored", "same"),
    [
        ('{"uid":"04A1B2C3D4E5F6","id":"r-1","ts":"2026-11-28T08:05:11.250+08:00"}', True),  # other key order
        ('{"id": "r-1", "ts": 1795824311250, "uid": "04A1B2C3D4E5F6", "retry": 3}', True),  # ms, unknown field
        ('{"id": "r-1", "ts": "2026-11-28T00:05:11.250Z", "uid": "04A1B2C3D4E5F6", "sdm": null}', True),
        ('{"id": "r-1", "ts": "2026-11-28T08:05:11.250+08:00", "uid": "04FFFFFFFFFFFF"}', False),  # another tag
        ('{"id": "r-1", "ts": "2026-11-28T08:05:12+08:00", "uid": "04A1B2C3D4E5F6"}', False),  # another time
        ('{"id": "r-1", "ts": 1764288311, "uid": "04A1B2C3D4E5F6"}', False),  # logged under older rules
        ("not json", False),
    ],
)
def test_same_message_is_the_same_under_the_contract_not_the_same_bytes(stored: str, same: bool) -> None:
    """Issue 6 item 5: a reused id is a conflict, a re-serialised re-send is not (CONTRACT.md)."""
    assert same_message("tap", TapPayload.model_validate(TAP_A), stored) is same


def test_same_message_compares_readings_by_value() -> None:
    reading = PAYLOADS["telemetry"].model_validate(
        {"id": "g", "ts": 1764288311250, "kind": "gas", "values": {"lel_pct": 3, "co_ppm": 0}}
    )
    again = '{"values": {"co_ppm": 0.0, "lel_pct": 3.0}, "kind": "gas", "ts": 1764288311250, "id": "g"}'
    other = '{"values": {"co_ppm": 0, "lel_pct": 4}, "kind": "gas", "ts": 1764288311250, "id": "g"}'
    assert same_message("telemetry", reading, again) and not same_message("telemetry", reading, other)


def test_tap_payload_with_sdm_and_unknown_fields() -> None:
    tap = TapPayload.model_validate(
        {
            "id": "r17-000123",
            "ts": "2026-11-28T08:05:11.250+08:00",
            "uid": "04A1B2C3D4E5F6",
            "sdm": {"picc": "EF963FF7828658A599F3041510671E88", "cmac": "94EED9EE65337086"},
            "extra": 1,
        }
    )
    assert tap.sdm is not None and tap.sdm.cmac == "94EED9EE65337086"


@pytest.mark.parametrize("uid", ["04A1B2C3", "04A1B2C3D4E5F6", "04A1B2C3D4E5F6A7B8C9"])
def test_tap_uid_of_4_7_10_bytes(uid: str) -> None:
    assert TapPayload.model_validate({"id": "a", "ts": 1764288311250, "uid": uid}).uid == uid


@pytest.mark.parametrize(
    "body",
    [
        {"ts": 1764288311250, "uid": "04A1B2C3D4E5F6"},
        {"id": "", "ts": 1764288311250, "uid": "04A1B2C3D4E5F6"},
        {"id": "a\x00b", "ts": 1764288311250, "uid": "04A1B2C3D4E5F6"},
        {"id": "a", "uid": "04A1B2C3D4E5F6"},
        {"id": "a", "ts": 1764288311250, "uid": "04A1B2"},
        {"id": "a", "ts": 1764288311250, "uid": "ZZA1B2C3D4E5F6"},
        {"id": "a", "ts": 1764288311250, "uid": "04A1B2C3D4E5F6", "sdm": {"picc": "00"}},
    ],
)
def test_bad_taps_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TapPayload.model_validate(body)


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("water_leak", {"wet": True, "level_mm": 3}),
        ("water_leak", {"wet": False}),
        ("gas", {"lel_pct": 3.5, "co_ppm": 0}),
        ("gas", {"lel_pct": 0}),
        ("elevator", {"state": "fault", "fault_code": "E31", "floor": 12, "door": "closed", "occupied": True}),
        ("electric_leak", {"leak_ma": 31}),
        ("smoke", {"alarm": True, "obscuration_pct": 2.5}),
        ("door", {"open": True}),
    ],
)
def test_telemetry_of_every_kind(kind: str, values: dict[str, object]) -> None:
    msg = TelemetryPayload.model_validate({"id": "x", "ts": 1764288311250, "kind": kind, "values": values})
    assert msg.typed_values() is not None


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("water_leak", {"wet": "yes"}),
        ("gas", {}),
        ("elevator", {"state": "broken"}),
        ("electric_leak", {"leak_ma": "a lot"}),
        ("smoke", {"alarm": 1}),
        ("door", {"open": "maybe"}),
    ],
)
def test_telemetry_values_checked_per_kind(kind: str, values: dict[str, object]) -> None:
    msg = TelemetryPayload.model_validate({"id": "x", "ts": 1764288311250, "kind": kind, "values": values})
    with pytest.raises(ValidationError):
        msg.typed_values()


def test_telemetry_of_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError):
        TelemetryPayload.model_validate({"id": "x", "ts": 1, "kind": "radiation", "values": {}})


def test_event_alarm_and_clear() -> None:
    ev = EventPayload.model_validate(
        {
            "id": "lift-b3-1-000057",
            "ts": "2026-11-28T21:14:03+08:00",
            "kind": "elevator",
            "state": "alarm",
            "code": "E31",
            "detail": {"trapped": True, "floor": 12},
        }
    )
    assert ev.detail["trapped"] is True
    with pytest.raises(ValidationError):
        EventPayload.model_validate({"id": "a", "ts": 1, "kind": "elevator", "state": "panic"})


def test_status_and_last_will() -> None:
    full = StatusPayload.model_validate(
        {"ts": "2026-11-28T08:00:00+08:00", "online": True, "battery_pct": 87, "rssi": -61, "fw": "1.4.2"}
    )
    will = StatusPayload.model_validate({"online": False})
    assert full.battery_pct == 87 and will.online is False and will.ts is None
    with pytest.raises(ValidationError):
        StatusPayload.model_validate({"online": True, "battery_pct": 140})
