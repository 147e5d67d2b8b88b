"""Resolving a tap to (guard, checkpoint) as CONTRACT.md says, and the bilingual answer."""

from __future__ import annotations

from core.contract import Reason
from core.taps import decide_tap
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
