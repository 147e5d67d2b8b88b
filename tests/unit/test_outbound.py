"""Out/ events and reader answers are contract models: what is published validates, and the live
feed forwards nothing else (no raw text from a client that publishes under out/)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.outbound import (
    MAX_OUT_BYTES,
    DeviceStatusEvent,
    Name,
    Outbound,
    ReaderAnswer,
    SignInBatch,
    SignInEvent,
    parse_out,
)

AT = datetime(2026, 11, 28, 8, 5, tzinfo=UTC)
SIGNIN = SignInEvent(
    device="rdr-h01",
    guard="G001",
    guard_name=Name(zh="张伟", en="Zhang Wei"),
    checkpoint="B1-F01-LOBBY",
    checkpoint_name=Name(zh="1栋 1F 大堂", en="Building 1 1F lobby"),
    tag_uid="04B5B0C8DAAEB8",
    ok=True,
    reason=None,
    tapped_at=AT,
    received_at=AT,
)


def test_a_published_signin_batch_reads_back_as_signins_one_by_one() -> None:
    out = Outbound("liyuan", SignInBatch(items=[SIGNIN, SIGNIN]))
    assert out.topic == "patrol/v1/liyuan/out/signins"
    body = json.loads(out.to_bytes())
    assert body["items"][0]["reason"] is None, "a sign-in keeps its null reason"
    assert parse_out(out.topic, out.to_bytes()) == ("liyuan", [SIGNIN, SIGNIN])


def test_device_status_leaves_out_what_the_device_did_not_report_and_is_retained() -> None:
    out = Outbound("liyuan", DeviceStatusEvent(device="rdr-h02", kind="handheld_reader", online=False, status_at=AT))
    assert out.topic == "patrol/v1/liyuan/out/device/rdr-h02/status"
    assert "battery_pct" not in json.loads(out.to_bytes())
    assert parse_out(out.topic, out.to_bytes()) == ("liyuan", [out.event])


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("patrol/v1/liyuan/out/signins", b"<script>alert(1)</script>"),
        ("patrol/v1/liyuan/out/signins", b'{"type": "signins", "items": [{"type": "signin", "html": "<b>"}]}'),
        ("patrol/v1/liyuan/out/signins", b'{"type": "nonsense"}'),
        ("patrol/v1/liyuan/out/hello", Outbound("liyuan", SignInBatch(items=[SIGNIN])).to_bytes()),
        ("patrol/v1/other/out/signins", b'{"type": "signins", "items": [], "extra": 1}'),
        ("patrol/v1/liyuan/out/device/rdr-h09/status", Outbound(
            "liyuan", DeviceStatusEvent(device="rdr-h02", kind="handheld_reader", online=True, status_at=AT)
        ).to_bytes()),
        ("patrol/v1/liyuan/reader/rdr-h01/ack", b'{"id": "x", "ok": true}'),
        ("", b""),
    ],
)  # fmt: skip
def test_anything_but_a_valid_event_on_its_own_topic_is_not_forwarded(topic: str, payload: bytes) -> None:
    assert parse_out(topic, payload) is None


def test_a_reader_answer_leaves_out_empty_fields() -> None:
    answer = ReaderAnswer(id="r-1", ok=False, reason="unknown_tag", message={"zh": "未登记的标签", "en": "Unknown tag"})
    assert json.loads(answer.to_bytes()) == {
        "id": "r-1",
        "ok": False,
        "reason": "unknown_tag",
        "message": {"zh": "未登记的标签", "en": "Unknown tag"},
    }


def test_a_large_batch_of_signins_is_split_into_messages_within_the_contract_limit() -> None:
    """A committed batch of 2,000 sign-ins is ~700 KB; the shipped broker disconnects a client that
    publishes over 16 KiB (CONTRACT.md "Payloads"), so out/signins goes out in pieces, none lost."""
    at = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    items = [
        SignInEvent(
            device="rdr-h01",
            guard="G001",
            guard_name=Name(zh="王" * 50, en="Wang " * 20),
            checkpoint=f"CP-{i}",
            checkpoint_name=Name(zh="管井房" * 60, en="pipe well " * 20),
            tag_uid="04A1B2C3D4E5F6",
            ok=True,
            reason=None,
            tapped_at=at,
            received_at=at,
        )
        for i in range(2000)
    ]
    payloads = Outbound("liyuan", SignInBatch(items=items)).payloads()
    assert len(payloads) > 1 and all(len(p) <= MAX_OUT_BYTES for p in payloads)
    checkpoints = [item["checkpoint"] for p in payloads for item in json.loads(p)["items"]]
    assert checkpoints == [f"CP-{i}" for i in range(2000)], "every sign-in once, in order"
    small = Outbound("liyuan", SignInBatch(items=items[:3]))
    assert small.payloads() == [small.to_bytes()]
