"""Resolving a tap to (guard, checkpoint) as CONTRACT.md says, and the bilingual answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from core.contract import Reason
from core.taps import decide_tap, refusal
from tests.unit.factories import BADGE_UID, CHECKPOINT_UID, FIXED, HANDHELD, directory


def test_handheld_reads_checkpoint_tag_for_its_holder() -> None:
    d = decide_tap(HANDHELD, CHECKPOINT_UID.lower(), directory())
    assert (d.ok, d.guard_id, d.location_id) == (True, 7, 10)
    ack = d.answer("r-1", directory())
    assert ack.checkpoint == "3栋 12F 管井房" and ack.message == {"zh": "签到成功", "en": "Signed in"}


def test_handheld_refuses_unknown_tag_and_badges() -> None:
    for uid in ("04CCCCCCCCCCCC", BADGE_UID):
        d = decide_tap(HANDHELD, uid, directory())
        assert (d.ok, d.reason) == (False, Reason.UNKNOWN_TAG)
        assert d.answer("r-2", directory()).message["zh"] == "未登记的标签"


def test_fixed_reader_reads_guard_badge_at_its_checkpoint() -> None:
    d = decide_tap(FIXED, BADGE_UID, directory())
    assert (d.ok, d.guard_id, d.location_id) == (True, 7, 11)


def test_fixed_reader_refuses_checkpoint_tags() -> None:
    d = decide_tap(FIXED, CHECKPOINT_UID, directory())
    assert (d.ok, d.reason, d.guard_id) == (False, Reason.UNKNOWN_TAG, None)


def test_the_answer_says_when_the_readers_clock_is_off() -> None:
    """Issue 6 item 4: the reader's answer carries the skew and says, in both languages, to set
    the clock; the sign-in counts at the receipt time and keeps the reader's own time."""
    d = replace(decide_tap(HANDHELD, CHECKPOINT_UID, directory()), clock_skew_s=-90000)
    ack = d.answer("r-9", directory())
    assert (ack.ok, ack.clock_skew_s) == (True, -90000)
    assert ack.message == {
        "zh": "签到成功；读卡器时钟不准，请校时",
        "en": "Signed in. Reader clock is off: set its time",
    }
    received = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    device_ts = received - timedelta(seconds=90000)
    event = d.event("rdr-h01", CHECKPOINT_UID, device_ts, received, directory())
    assert (event.tapped_at, event.device_ts, event.clock_skew_s) == (received, device_ts, -90000)


def test_an_answer_without_skew_leaves_the_field_out() -> None:
    d = decide_tap(HANDHELD, CHECKPOINT_UID, directory())
    assert b"clock_skew_s" not in d.answer("r-10", directory()).to_bytes()
    received = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    event = d.event("rdr-h01", CHECKPOINT_UID, received - timedelta(seconds=3), received, directory())
    assert event.tapped_at == received - timedelta(seconds=3) and event.clock_skew_s is None


def test_refusals_of_the_new_reasons_are_bilingual() -> None:
    for reason, en in (("bad_timestamp", "set its clock"), ("id_conflict", "Message id reused")):
        ack = refusal("r-11", reason)
        assert (ack.ok, ack.reason) == (False, reason) and en in ack.message["en"]
        assert ack.message["zh"] and ack.message["zh"] != reason
