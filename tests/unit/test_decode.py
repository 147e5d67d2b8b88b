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
            json.dumps({"id": "g1", "ts": 1, "kind": "gas", "values": {"lel": 3}}).encode(),
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
