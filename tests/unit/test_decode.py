"""Every kind of bad input in CONTRACT.md becomes a Rejected with its reason, never an exception."""

from __future__ import annotations

import json

import pytest

from core.contract import RejectReason
from gateway.decode import decode
from gateway.messages import Accepted, Rejected
from tests.unit.factories import CHECKPOINT_UID, directory, received

TAP = "patrol/v1/s/reader/rdr-h01/tap"
GOOD = json.dumps({"id": "t1", "ts": 1764288311250, "uid": CHECKPOINT_UID}).encode()


def test_good_tap_is_accepted() -> None:
    out = decode(received(TAP, GOOD), directory())
    assert isinstance(out, Accepted) and out.msg_id == "t1" and out.device.code == "rdr-h01"


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "answered"),
    [
        (TAP, b"{not json", RejectReason.BAD_JSON, True),
        (TAP, b"\xff\xfe", RejectReason.BAD_JSON, True),
        (TAP, b"[1, 2]", RejectReason.BAD_JSON, True),
        (
            TAP,
            json.dumps({"id": "t2", "ts": "yesterday", "uid": CHECKPOINT_UID}).encode(),
            RejectReason.BAD_TIMESTAMP,
            True,
        ),
        (
            TAP,
            json.dumps({"id": "t2", "ts": "yesterday", "uid": "nope"}).encode(),
            RejectReason.BAD_SCHEMA,
            True,
        ),
        (
            TAP,
            json.dumps({"id": "t3", "ts": 1, "uid": "0" * 14, "pad": "x" * 17000}).encode(),
            RejectReason.TOO_LARGE,
            True,
        ),
        ("patrol/v1/s/reader/nobody/tap", GOOD, RejectReason.UNKNOWN_DEVICE, True),
        ("patrol/v1/s/reader/gas-1/tap", GOOD, RejectReason.WRONG_DEVICE_KIND, True),
        ("patrol/v1/s/reader/rdr-h01/tapp", GOOD, RejectReason.UNKNOWN_TOPIC, False),
        (
            "patrol/v1/s/sensor/gas-1/telemetry",
            json.dumps({"id": "g1", "ts": 1764288311250, "kind": "gas", "values": {"lel": 3}}).encode(),
            RejectReason.BAD_SCHEMA,
            False,
        ),
        ("somewhere/else", GOOD, RejectReason.UNKNOWN_TOPIC, False),
        (TAP, b'{"id": "deep", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", RejectReason.TOO_LARGE, True),
        (TAP, b'{"id": "deep", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", RejectReason.BAD_JSON, True),
    ],
)
def test_bad_input_is_rejected_with_reason(topic: str, payload: bytes, reason: RejectReason, answered: bool) -> None:
    out = decode(received(topic, payload), directory())
    assert isinstance(out, Rejected)
    assert out.reason is reason and out.detail
    assert out.answer_reader is answered


def test_rejected_tap_keeps_its_id_for_the_answer() -> None:
    out = decode(received(TAP, json.dumps({"id": "t9", "ts": "bad", "uid": CHECKPOINT_UID}).encode()), directory())
    assert isinstance(out, Rejected) and out.msg_id == "t9"


def test_own_publications_are_ignored() -> None:
    assert decode(received("patrol/v1/s/reader/rdr-h01/ack", b"{}"), directory()) is None
    assert decode(received("patrol/v1/s/out/signin", b"{}"), directory()) is None


def test_an_id_that_cannot_be_encoded_is_not_echoed() -> None:
    payload = b'{"id": "\\ud800x", "ts": 1764288311250, "uid": "04A1B2C3D4E5F6"}'
    out = decode(received(TAP, payload), directory())
    assert isinstance(out, Rejected) and out.reason is RejectReason.BAD_SCHEMA and out.msg_id is None


@pytest.mark.parametrize(
    ("ts", "says"),
    [
        (1764288311, "looks like epoch seconds: multiply by 1000"),
        (1764288311250000, "looks like epoch microseconds"),
        ("2026-11-28T08:05:11", "no UTC offset"),
        ("1970-01-21T10:04:48Z", "the device clock is not set"),
        (0, "the device clock is not set"),
        ("noon", "RFC 3339 with an offset"),
        (None, "RFC 3339 text with an offset or integer epoch milliseconds"),
    ],
)
def test_a_tap_whose_ts_is_unusable_is_refused_as_bad_timestamp_saying_what_to_fix(ts: object, says: str) -> None:
    """Issue 6 item 4: seconds where milliseconds belong were stored as 1970-01-21; an RFC 3339 time
    without an offset was refused as a mere schema error. Now each is `bad_timestamp`, answered to
    the reader, with a detail naming the fix."""
    payload = json.dumps({"id": "t-ts", "ts": ts, "uid": CHECKPOINT_UID}).encode()
    out = decode(received(TAP, payload), directory())
    assert isinstance(out, Rejected) and out.reason is RejectReason.BAD_TIMESTAMP, out
    assert says in out.detail and out.answer_reader and out.msg_id == "t-ts"


def test_a_missing_ts_is_a_bad_timestamp() -> None:
    out = decode(received(TAP, json.dumps({"id": "t-no", "uid": CHECKPOINT_UID}).encode()), directory())
    assert isinstance(out, Rejected) and out.reason is RejectReason.BAD_TIMESTAMP


@pytest.mark.parametrize(
    ("channel", "body"),
    [
        ("telemetry", {"id": "w1", "ts": 1764288311250, "kind": "water_leak", "values": {"wet": True}}),
        ("event", {"id": "w2", "ts": 1764288311250, "kind": "smoke", "state": "alarm"}),
    ],
)
def test_a_reading_of_another_kind_than_the_sensor_is_refused(channel: str, body: dict[str, object]) -> None:
    """Issue 6 item 6: a water-leak reading from the gas sensor `gas-1` was accepted."""
    out = decode(received(f"patrol/v1/s/sensor/gas-1/{channel}", json.dumps(body).encode()), directory())
    assert isinstance(out, Rejected) and out.reason is RejectReason.KIND_MISMATCH
    assert "'gas-1' is a gas sensor" in out.detail and str(body["kind"]) in out.detail
    assert out.msg_id == body["id"] and not out.answer_reader


def test_a_reading_of_the_sensors_own_kind_is_accepted() -> None:
    body = {"id": "g9", "ts": 1764288311250, "kind": "gas", "values": {"lel_pct": 1.5}}
    out = decode(received("patrol/v1/s/sensor/gas-1/telemetry", json.dumps(body).encode()), directory())
    assert isinstance(out, Accepted)
