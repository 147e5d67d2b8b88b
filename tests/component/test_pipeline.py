"""The whole gateway pipeline in-process: decode → handlers → commit → answers → acks, with a fake
link and a fake clock, on SQLite and PostgreSQL (the `engine` fixture)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from core.outbound import parse_out
from gateway.effects import Effects
from gateway.handlers import Context
from gateway.handlers.readings import handle_sensor_messages
from gateway.messages import Accepted
from storage.db import session_factory, transaction
from storage.models import Device, InboundMessage, Location, QuarantinedMessage, SignIn
from storage.sitefile.schema import SiteFile
from tests.support.rig import Rig, make_rig

SITE = "liyuan"
READER = "rdr-h01"  # a handheld reader held by guard G001
TAP = f"patrol/v1/{SITE}/reader/{READER}/tap"
ACK = f"/reader/{READER}/ack"
GAS = "gas-b1-shop101"
T0 = 1764288311250  # 2025-11-28T00:05:11.250Z in epoch ms


@pytest.fixture
def rig(engine: Engine, db_url: str) -> Rig:
    return make_rig(engine, db_url)


def _tag(site: SiteFile, code: str = "B1-F01-LOBBY") -> str:
    return next(loc.tag for loc in site.locations if loc.code == code and loc.tag)


def _tap(msg_id: str, uid: str, ts: int = T0) -> dict[str, object]:
    return {"id": msg_id, "ts": ts, "uid": uid}


def test_a_tap_sent_three_times_in_one_batch_signs_in_once_and_gets_one_answer_three_times(
    rig: Rig, demo_site: SiteFile
) -> None:
    """P1 §2.3: each tap is one sign-in; the same message id is the same message (CONTRACT.md)."""
    for _ in range(3):
        rig.link.inject(TAP, _tap("r-1", _tag(demo_site)))
    assert rig.gateway.pump() == 3
    answers = [body for _, body in rig.link.published(ACK)]
    assert len(answers) == 3 and all(a == answers[0] for a in answers)
    assert (answers[0]["ok"], answers[0]["checkpoint"], answers[0]["guard"]) == (True, "1栋 1F 大堂", "G001")
    assert rig.count(select(func.count()).select_from(SignIn)) == 1
    assert rig.count(select(func.count()).select_from(InboundMessage)) == 1
    [(topic, batch)] = rig.link.published("/out/signins")
    assert [i["checkpoint"] for i in batch["items"]] == ["B1-F01-LOBBY"]
    assert parse_out(topic, json.dumps(batch).encode()) is not None, "what is published validates as out/"
    assert sorted(rig.link.acked) == [1, 2, 3]


def test_answers_are_published_before_the_broker_ack(rig: Rig, demo_site: SiteFile) -> None:
    """A crash between the two then means a redelivery and the same answer, never silence."""
    msg = rig.link.inject(TAP, _tap("r-2", _tag(demo_site)))
    rig.gateway.pump()
    answer_at = next(i for i, (what, p) in enumerate(rig.link.log) if what == "publish" and p[0].endswith(ACK))
    assert rig.link.log.index(("ack", msg.mid)) > answer_at


def test_a_redelivery_is_answered_from_the_stored_sign_in(rig: Rig, demo_site: SiteFile) -> None:
    """The answer is rebuilt from the sign-in row, not decided again and not read from a blob:
    change the row and the redelivery's answer follows it."""
    rig.link.inject(TAP, _tap("r-3", _tag(demo_site)))
    rig.gateway.pump()
    with transaction(session_factory(rig.engine)) as s:
        other = s.scalars(select(Location.id).where(Location.code == "B1-F01-TEL")).one()
        s.execute(update(SignIn).values(location_id=other, ok=False, reason="too_fast"))
    rig.link.inject(TAP, _tap("r-3", _tag(demo_site)))  # the broker redelivers after a crash
    rig.gateway.pump()
    first, again = (body for _, body in rig.link.published(ACK))
    assert (first["ok"], first["checkpoint_en"]) == (True, "Building 1 1F lobby")
    assert (again["ok"], again["reason"], again["checkpoint_en"]) == (False, "too_fast", "Building 1 1F telecom room")
    assert rig.count(select(func.count()).select_from(SignIn)) == 1
    assert len(rig.link.published("/out/signins")) == 1, "a redelivery announces no new sign-in"


def test_a_refused_tap_keeps_its_verdict_when_the_tag_is_registered_later(rig: Rig, demo_site: SiteFile) -> None:
    """A redelivery gets the stored verdict even if the directory would now judge otherwise."""
    rig.link.inject(TAP, _tap("r-4", "04FFFFFFFFFFFF"))
    rig.gateway.pump()
    rig.link.inject(TAP, _tap("r-4", "04FFFFFFFFFFFF"))
    rig.gateway.pump()
    answers = [body for _, body in rig.link.published(ACK)]
    assert [(a["ok"], a["reason"]) for a in answers] == [(False, "unknown_tag")] * 2


def test_status_last_write_wins_by_observation_time(rig: Rig) -> None:
    topic = f"patrol/v1/{SITE}/device/{READER}/status"
    at = rig.clock.now()
    rig.link.inject(topic, {"ts": (at + timedelta(minutes=2)).isoformat(), "online": True, "battery_pct": 80})
    rig.link.inject(topic, {"ts": (at + timedelta(minutes=1)).isoformat(), "online": False, "battery_pct": 90})
    rig.gateway.pump()  # both in one batch, the newer first
    rig.link.inject(topic, {"ts": at.isoformat(), "online": False})  # an old retained status, late
    rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        d = s.scalars(select(Device).where(Device.code == READER)).one()
        assert (d.online, d.battery_pct, d.status_at) == (True, 80, at + timedelta(minutes=2))
    events = [body for _, body in rig.link.published(f"/out/device/{READER}/status")]
    assert [(e["online"], e["battery_pct"]) for e in events] == [(True, 80)], "only the change is announced"
    retained = [p[3] for what, p in rig.link.log if what == "publish" and p[0].endswith("/status")]
    assert retained == [True]


def test_telemetry_and_events_are_logged_once_each(rig: Rig) -> None:
    telemetry = f"patrol/v1/{SITE}/sensor/{GAS}/telemetry"
    event = f"patrol/v1/{SITE}/sensor/{GAS}/event"
    reading = {"id": "g-1", "ts": T0, "kind": "gas", "values": {"lel_pct": 3.5}}
    alarm = {"id": "g-2", "ts": T0, "kind": "gas", "state": "alarm", "code": "LEL"}
    for _ in range(2):
        rig.link.inject(telemetry, reading)
        rig.link.inject(event, alarm)
        rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        rows = s.execute(select(InboundMessage.kind, InboundMessage.msg_id).order_by(InboundMessage.id)).all()
    assert [tuple(r) for r in rows] == [("telemetry", "g-1"), ("event", "g-2")]
    assert rig.link.acked == [1, 2, 3, 4]


def test_a_rejected_delivery_applied_twice_is_kept_once_and_answered_twice(rig: Rig) -> None:
    """Defect on the spine: a redelivered rejection was stored twice in the quarantine."""
    for _ in range(2):
        rig.link.inject(TAP, b"{oops")  # the same delivery again, after a crash before the ack
        rig.gateway.pump()
    assert rig.count(select(func.count()).select_from(QuarantinedMessage)) == 1
    answers = [body for _, body in rig.link.published(ACK)]
    assert [(a["ok"], a["reason"]) for a in answers] == [(False, "bad_json")] * 2
    assert rig.link.acked == [1, 2]


def test_a_handler_that_raises_costs_only_its_own_message(engine: Engine, db_url: str, demo_site: SiteFile) -> None:
    """The message that breaks its handler is quarantined as internal_error; the rest of the batch
    is committed and answered, and every message is acked."""

    def fragile(session: Session, msgs: list[Accepted], ctx: Context) -> Effects:
        if any(m.msg_id == "poison" for m in msgs):
            raise ValueError("this handler cannot take a poison event")
        return handle_sensor_messages(session, msgs, ctx)

    rig = make_rig(engine, db_url, handlers={"event": fragile})
    event = f"patrol/v1/{SITE}/sensor/{GAS}/event"
    rig.link.inject(event, {"id": "fine", "ts": T0, "kind": "gas", "state": "alarm"})
    rig.link.inject(event, {"id": "poison", "ts": T0, "kind": "gas", "state": "alarm"})
    rig.link.inject(TAP, _tap("r-5", _tag(demo_site)))
    rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        logged = set(s.scalars(select(InboundMessage.msg_id)))
        kept = s.execute(select(QuarantinedMessage.reason, QuarantinedMessage.detail)).all()
    assert logged == {"fine", "r-5"}
    assert [(r, "poison event" in d) for r, d in kept] == [("internal_error", True)]
    assert [a["ok"] for _, a in rig.link.published(ACK)] == [True]
    assert sorted(rig.link.acked) == [1, 2, 3]


def test_a_publication_that_cannot_be_sent_does_not_hold_back_the_acks(
    rig: Rig, demo_site: SiteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The effect is committed; an unsendable answer is logged, and the session keeps moving."""

    def broken(topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        raise ValueError("the link refuses this publication")

    monkeypatch.setattr(rig.link, "publish", broken)
    rig.link.inject(TAP, _tap("r-6", _tag(demo_site)))
    rig.gateway.pump()
    assert rig.link.acked == [1]
    assert rig.count(select(func.count()).select_from(SignIn)) == 1
