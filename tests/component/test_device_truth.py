"""What a device says about itself, checked: its clock (issue 6 item 4) and its message ids
(item 5), through the whole gateway pipeline with a fake link and a fake clock, on SQLite and
PostgreSQL (the `engine` fixture). docs/mqtt-contract.md, "Device clocks" and "Message ids"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from core.config import Settings
from core.device_clock import ClockWindow
from gateway.decode import decode
from gateway.handlers import HANDLERS, Context, apply_batch
from gateway.messages import Accepted, Received
from storage.db import session_factory
from storage.directory import load_directory
from storage.models import Device, InboundMessage, QuarantinedMessage, SignIn
from storage.sitefile.schema import SiteFile
from tests.support.rig import Rig, make_rig

SITE = "liyuan"
READER = "rdr-h01"  # a handheld reader held by guard G001
TAP = f"patrol/v1/{SITE}/reader/{READER}/tap"
ACK = f"/reader/{READER}/ack"
NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.fixture
def rig(engine: Engine, db_url: str) -> Rig:
    return make_rig(engine, db_url, now=NOW)


def _signins(rig: Rig) -> int:
    return rig.count(select(func.count()).select_from(SignIn))


def _tag(site: SiteFile, code: str) -> str:
    return next(loc.tag for loc in site.locations if loc.code == code and loc.tag)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def _rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("patrol_messages_rejected_total", {"reason": reason}) or 0.0


def _duplicates() -> float:
    return REGISTRY.get_sample_value("patrol_messages_duplicate_total") or 0.0


# --- device clocks ---------------------------------------------------------------------------


def test_a_tap_from_a_reader_whose_clock_is_a_year_ahead_counts_at_receipt_time_and_the_answer_says_so(
    rig: Rig, demo_site: SiteFile
) -> None:
    """A ts a year ahead was accepted silently and the sign-in stored a year ahead, so it fell out
    of every day's list. Now it is kept, counts at the receipt time, keeps the reader's time, and
    the reader is told its clock is off, the same on every redelivery."""
    ahead = NOW + timedelta(days=365)
    tap = {"id": "skew-1", "ts": _iso(ahead), "uid": _tag(demo_site, "B1-F01-LOBBY")}
    rig.link.inject(TAP, tap)
    rig.gateway.pump()
    rig.clock.advance(600)  # the broker redelivers later: the skew is the stored one, not recomputed
    rig.link.inject(TAP, tap)
    rig.gateway.pump()
    first, again = rig.answers(ACK)
    assert first == again
    assert (first["ok"], first["checkpoint"], first["clock_skew_s"]) == (True, "1栋 1F 大堂", 365 * 86400)
    assert first["message"] == {
        "zh": "签到成功；读卡器时钟不准，请校时",
        "en": "Signed in. Reader clock is off: set its time",
    }
    with session_factory(rig.engine)() as s:
        signin = s.scalars(select(SignIn)).one()
        logged = s.scalars(select(InboundMessage)).one()
    assert (signin.tapped_at, signin.received_at) == (NOW, NOW)
    assert (logged.device_ts, logged.clock_skew_s) == (ahead, 365 * 86400)
    [(_, batch)] = rig.link.published("/out/signins")
    [event] = batch["items"]
    assert event["clock_skew_s"] == 365 * 86400 and event["device_ts"].startswith("2027-11-28T08:00:00")
    assert event["tapped_at"].startswith("2026-11-28T08:00:00")


def test_a_tap_from_an_offline_queue_within_the_window_counts_at_the_readers_time(
    rig: Rig, demo_site: SiteFile
) -> None:
    """A reader back from ten hours offline sends its queued taps: they are not clock errors."""
    queued_at = NOW - timedelta(hours=10)
    rig.link.inject(TAP, {"id": "queued-1", "ts": _iso(queued_at), "uid": _tag(demo_site, "B1-F01-LOBBY")})
    rig.gateway.pump()
    [answer] = rig.answers(ACK)
    assert answer["ok"] is True and "clock_skew_s" not in answer and answer["message"]["en"] == "Signed in"
    with session_factory(rig.engine)() as s:
        assert s.scalars(select(SignIn.tapped_at)).one() == queued_at
        assert s.scalars(select(InboundMessage.clock_skew_s)).one() is None


def test_a_ts_in_seconds_is_refused_as_bad_timestamp_and_answered(rig: Rig, demo_site: SiteFile) -> None:
    """Was stored as a sign-in on 1970-01-21."""
    before = _rejected("bad_timestamp")
    rig.link.inject(TAP, {"id": "secs-1", "ts": int(NOW.timestamp()), "uid": _tag(demo_site, "B1-F01-LOBBY")})
    rig.gateway.pump()
    [answer] = rig.answers(ACK)
    assert (answer["id"], answer["ok"], answer["reason"]) == ("secs-1", False, "bad_timestamp")
    assert answer["message"]["en"] == "Device time invalid: set its clock"
    assert _signins(rig) == 0
    with session_factory(rig.engine)() as s:
        kept = s.execute(select(QuarantinedMessage.reason, QuarantinedMessage.detail)).one()
    assert kept.reason == "bad_timestamp" and "multiply by 1000" in kept.detail
    assert _rejected("bad_timestamp") - before == 1


# --- message ids reused ----------------------------------------------------------------------


def test_a_reader_reusing_an_id_after_a_reboot_gets_id_conflict_not_the_old_verdict(
    rig: Rig, demo_site: SiteFile
) -> None:
    """Issue 6 item 5: the second tap (another checkpoint, same id after a counter reset) was taken
    for a duplicate and answered with the first tap's verdict naming the first checkpoint. Now it
    is kept in the quarantine as `id_conflict`, counted, and answered so; its redelivery too, kept
    once; the first tap's own redelivery still gets the first tap's answer."""
    conflicts, duplicates = _rejected("id_conflict"), _duplicates()
    lobby = {"id": "r-000001", "ts": _iso(NOW - timedelta(hours=1)), "uid": _tag(demo_site, "B1-F01-LOBBY")}
    rig.link.inject(TAP, lobby)
    rig.gateway.pump()
    rig.clock.advance(3600)  # the reader reboots and its counter starts again at 1
    telecom = {"id": "r-000001", "ts": _iso(rig.clock.now()), "uid": _tag(demo_site, "B1-F01-TEL")}
    rig.link.inject(TAP, telecom)
    rig.gateway.pump()
    rig.link.inject(TAP, telecom)  # the broker redelivers the conflicting tap
    rig.gateway.pump()

    first, conflict, conflict_again = rig.answers(ACK)
    assert (first["ok"], first["checkpoint_en"]) == (True, "Building 1 1F lobby")
    assert conflict == conflict_again
    assert (conflict["id"], conflict["ok"], conflict["reason"]) == ("r-000001", False, "id_conflict")
    assert "checkpoint" not in conflict and "guard" not in conflict, "nothing of the other tap's verdict"
    assert conflict["message"]["en"] == "Message id reused: check the device"
    assert _signins(rig) == 1
    with session_factory(rig.engine)() as s:
        [kept] = s.scalars(select(QuarantinedMessage)).all()
    assert (kept.reason, kept.device_code) == ("id_conflict", READER)
    assert _tag(demo_site, "B1-F01-TEL").encode() in kept.payload
    assert "reused message id 'r-000001'" in kept.detail and "boot counter" in kept.detail
    assert _rejected("id_conflict") - conflicts == 1, "counted once: the redelivery is a repeat"
    assert _duplicates() - duplicates == 1, "the conflict's redelivery is a duplicate, the conflict is not"

    rig.link.inject(TAP, lobby)  # and the first tap, re-sent from the reader's queue
    rig.gateway.pump()
    assert rig.answers(ACK)[-1] == first


def test_a_re_sent_tap_serialised_differently_is_the_same_tap_not_a_conflict(rig: Rig, demo_site: SiteFile) -> None:
    """Same under the contract (same instant, same tag), other bytes: ms instead of RFC 3339, other
    key order, an unknown field. It is a redelivery, answered from the stored sign-in."""
    tapped = NOW - timedelta(minutes=2)
    uid = _tag(demo_site, "B1-F01-LOBBY")
    rig.link.inject(TAP, {"id": "r-7", "ts": _iso(tapped.astimezone(UTC)), "uid": uid})
    rig.link.inject(TAP, {"uid": uid, "retry": 2, "ts": int(tapped.timestamp() * 1000), "id": "r-7"})
    rig.gateway.pump()
    first, again = rig.answers(ACK)
    assert first == again and first["ok"] is True
    assert _signins(rig) == 1
    assert rig.count(select(func.count()).select_from(QuarantinedMessage)) == 0


def test_a_conflict_within_one_batch_is_caught_too(rig: Rig, demo_site: SiteFile) -> None:
    ts = _iso(NOW)
    rig.link.inject(TAP, {"id": "b-1", "ts": ts, "uid": _tag(demo_site, "B1-F01-LOBBY")})
    rig.link.inject(TAP, {"id": "b-1", "ts": ts, "uid": _tag(demo_site, "B1-F01-TEL")})
    assert rig.gateway.pump() == 2
    answers = {(a["ok"], a.get("reason"), a.get("checkpoint_en")) for a in rig.answers(ACK)}
    assert answers == {(True, None, "Building 1 1F lobby"), (False, "id_conflict", None)}
    assert _signins(rig) == 1
    assert rig.link.acked == [1, 2]


def test_a_sensor_reusing_an_id_for_another_reading_is_quarantined_not_answered(rig: Rig) -> None:
    topic = f"patrol/v1/{SITE}/sensor/gas-b1-shop101/telemetry"
    rig.link.inject(topic, {"id": "g-1", "ts": _iso(NOW), "kind": "gas", "values": {"lel_pct": 1.0}})
    rig.link.inject(topic, {"id": "g-1", "ts": _iso(NOW), "kind": "gas", "values": {"lel_pct": 1.0}})  # a re-send
    rig.gateway.pump()
    rig.link.inject(topic, {"id": "g-1", "ts": _iso(NOW), "kind": "gas", "values": {"lel_pct": 40.0}})
    rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        assert s.scalars(select(InboundMessage.payload)).one().find('"lel_pct": 1.0') > 0
        assert s.scalars(select(QuarantinedMessage.reason)).all() == ["id_conflict"]
    assert rig.answers(ACK) == [] and rig.link.acked == [1, 2, 3]


def test_a_reading_of_another_kind_than_its_sensor_is_quarantined(rig: Rig) -> None:
    """Issue 6 item 6: gas from a water-leak sensor was accepted."""
    before = _rejected("kind_mismatch")
    topic = f"patrol/v1/{SITE}/sensor/leak-b1-pump/telemetry"
    rig.link.inject(topic, {"id": "l-1", "ts": _iso(NOW), "kind": "gas", "values": {"lel_pct": 30.0}})
    rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 0
        [(reason, detail)] = s.execute(select(QuarantinedMessage.reason, QuarantinedMessage.detail)).all()
    assert reason == "kind_mismatch" and "is a water_leak sensor but sent a gas telemetry" in detail
    assert _rejected("kind_mismatch") - before == 1


def test_the_handlers_judge_clocks_by_the_configured_window(engine: Engine, demo_site: SiteFile) -> None:
    """With a one-hour past window (PATROL_CLOCK_PAST_WINDOW_S=3600), a tap queued two hours ago is
    clock skew; with the default window of a day it is not."""
    sessions = session_factory(engine)
    with sessions() as s:
        directory = load_directory(s)
    payload = json.dumps({"id": "w-1", "ts": _iso(NOW - timedelta(hours=2)), "uid": _tag(demo_site, "B1-F01-LOBBY")})
    decoded = decode(Received(TAP, payload.encode(), 1, 1, False, NOW), directory)
    assert isinstance(decoded, Accepted)
    skews = []
    for window in (Settings(_env_file=None, clock_past_window_s=3600).clock_window, ClockWindow()):  # type: ignore[call-arg]
        with sessions() as s:  # rolled back: the second window judges the same tap afresh
            effects = apply_batch(s, [decoded], [], Context(directory, NOW, clock_window=window), HANDLERS)
            s.rollback()
        skews.append(effects.replies[0].answer.clock_skew_s)
    assert skews == [-7200, None]


def test_a_status_from_a_clock_a_year_ahead_does_not_pin_the_device_status(rig: Rig) -> None:
    """Issue 6 item 4: "newest status wins" goes by the judged time, so a status stamped a year ahead
    counts at its receipt time and a later correct status still replaces it."""
    topic = f"patrol/v1/{SITE}/device/{READER}/status"
    rig.link.inject(topic, {"ts": _iso(NOW + timedelta(days=365)), "online": False, "battery_pct": 5})
    rig.gateway.pump()
    rig.clock.advance(60)
    rig.link.inject(topic, {"ts": _iso(rig.clock.now()), "online": True, "battery_pct": 90})
    rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        d = s.scalars(select(Device).where(Device.code == READER)).one()
        assert (d.online, d.battery_pct, d.status_at) == (True, 90, rig.clock.now())
