"""Device contract v1, line by line: topics, timestamps, payload schemas (no broker, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from core.contract import (
    EventPayload,
    StatusPayload,
    TapPayload,
    TelemetryPayload,
    Topic,
    is_own_output,
    parse_topic,
    parse_ts,
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
