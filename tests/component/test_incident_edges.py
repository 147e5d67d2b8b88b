"""The incident flow's edges, found in review: snoozes, an alarm outliving its closed ticket, device
clocks on the offline rule, and the deadline engine never waiting on what a gateway or the API holds."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from app.wiring import deadline_handlers
from core.config import Settings
from core.deadlines import Deadline
from core.outbound import Outbound
from core.tickets import IncidentRecord
from gateway.sweeper import Sweeper
from storage import ticket_flow
from storage.alarm_flow import RULE_DUE
from storage.db import session_factory, transaction
from storage.models import Alarm, AlarmSnooze, Device, OutboxMessage, Site, Ticket, TicketEvent
from storage.tickets import steps_of
from tests.support.mqtt import wait_until
from tests.support.rig import Rig, make_rig

SITE = "liyuan"
GAS = "gas-b1-shop101"
T0 = datetime(2025, 11, 28, 2, 0, tzinfo=UTC)
HOOK = '[{"name": "ops", "url": "https://hooks.example/x"}]'


@pytest.fixture
def rig(engine: Engine, db_url: str) -> Rig:
    return make_rig(engine, db_url, now=T0, webhooks=HOOK)


def _reading(rig: Rig, msg_id: str, ts: datetime | None = None, **values: Any) -> None:
    at = ts or rig.clock.now()
    body = {"id": msg_id, "ts": int(at.timestamp() * 1000), "kind": "gas", "values": values}
    rig.link.inject(f"patrol/v1/{SITE}/sensor/{GAS}/telemetry", body)
    rig.gateway.pump()


def _rows(rig: Rig, model: Any) -> list[Any]:
    with session_factory(rig.engine)() as s:
        return list(s.scalars(select(model).order_by(model.id)))


def _notices(rig: Rig) -> list[str]:
    return [row.notice["kind"] for row in _rows(rig, OutboxMessage)]


def _musters(rig: Rig) -> int:
    return sum(1 for e in _rows(rig, TicketEvent) if e.kind == "muster")


def test_a_snooze_pages_nobody_and_the_alarm_gets_its_ticket_once_the_snooze_is_over(rig: Rig) -> None:
    """A supervisor's snooze (issue 7 item 3): alarms are recorded and published quietly, with no
    ticket and no notice, also when they rise; after it, the still active gas alarm opens its
    ticket and, being critical, the muster (P5 §1)."""
    with transaction(session_factory(rig.engine)) as s:
        device = s.scalars(select(Device.id).where(Device.code == GAS)).one()
        s.add(AlarmSnooze(device_id=device, until=T0 + timedelta(minutes=30), reason="calibration",
                          created_by="sup", created_at=T0))  # fmt: skip
    _reading(rig, "g-1", lel_pct=12.0)
    rig.clock.advance(60)
    _reading(rig, "g-2", lel_pct=30.0)
    assert _notices(rig) == [] and _rows(rig, Ticket) == [], "a snooze pages nobody and opens no ticket"
    changes = [(b["change"], b["quiet"]) for _, b in rig.link.published(f"/out/alarm/{GAS}/gas")]
    assert changes == [("raised", True), ("rose", True)]
    rig.clock.advance(30 * 60)
    _reading(rig, "g-3", lel_pct=31.0)  # the snooze is over; the alarm is still active
    [ticket] = _rows(rig, Ticket)
    assert (ticket.procedure, ticket.severity) == ("gas_leak", "critical")
    assert _musters(rig) == 1


def test_a_rise_after_the_ticket_was_closed_opens_a_new_ticket(rig: Rig) -> None:
    """An alarm can stay active after its ticket is closed (closing needs the record, not a dry
    sensor); when it then gets worse, a new ticket is opened, and a critical gas alarm musters
    (P5 §2.4.5(2), P5 §1), instead of a note on a closed ticket nobody reads."""
    env = rig.gateway.incidents.env
    _reading(rig, "g-1", lel_pct=12.0)
    [first] = _rows(rig, Ticket)
    with transaction(session_factory(rig.engine)) as s:
        ticket_flow.acknowledge(s, env, first.id, "E002", T0)
        for step in steps_of(s, first.id):
            ticket_flow.step_not_applicable(s, env, first.id, step.code, "E002", T0, "handled")
        ticket_flow.close(s, env, first.id, "E002", T0, IncidentRecord("smell near shop", "valve", "check weekly"))
    rig.clock.advance(60)
    _reading(rig, "g-2", lel_pct=30.0)
    tickets = _rows(rig, Ticket)
    [alarm] = _rows(rig, Alarm)
    assert [(t.state, t.severity) for t in tickets] == [("closed", "warning"), ("open", "critical")]
    assert alarm.ticket_id == tickets[1].id and _musters(rig) == 1


def test_a_device_clock_running_fast_does_not_hide_its_next_last_will(rig: Rig) -> None:
    """The offline rule judges a Last Will at its receipt time (it has no `ts`); a reading that
    brings the device back counts at its receipt time too, so a device clock two minutes fast
    (believed, inside the window) cannot make the next Last Will look older and be ignored."""
    status = f"patrol/v1/{SITE}/device/{GAS}/status"
    rig.link.inject(status, b'{"online": false}')
    rig.gateway.pump()
    rig.clock.advance(10)
    _reading(rig, "g-1", ts=rig.clock.now() + timedelta(minutes=2), lel_pct=1.0)
    assert all(a.cleared_at is not None for a in _rows(rig, Alarm)), "back online"
    rig.clock.advance(30)
    rig.link.inject(status, b'{"online": false}')
    rig.gateway.pump()
    assert [a.cleared_at is None for a in _rows(rig, Alarm)] == [False, True]


def _lock_waits(engine: Engine) -> int:
    with engine.connect() as conn:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        return int(conn.execute(text(sql)).scalar_one())


@pytest.mark.parametrize("db_kind", ["postgresql"], indirect=True)
def test_the_deadline_engine_never_waits_on_a_rule_state_a_gateway_holds(rig: Rig) -> None:
    """A sweeper holds the deadlines it claimed until it commits; a gateway holding a sensor's
    rule state and moving that sensor's due time waits for it. The sweeper's handler must not
    wait for the rule state in turn (a deadlock): it finds it busy, puts the deadline back for a
    moment, and both commit."""
    _reading(rig, "g-1", lel_pct=12.0)
    rig.clock.advance(10)
    _reading(rig, "g-2", lel_pct=1.0)  # clearing: due in 60 s
    rig.clock.advance(61)
    claimed, go = threading.Event(), threading.Event()
    settings = Settings(_env_file=None, database_url="sqlite://", mqtt_url="mqtt://127.0.0.1:1")  # type: ignore[call-arg]
    handlers = dict(deadline_handlers(settings, rig.gateway.incidents))
    real = handlers[RULE_DUE]

    def held_back(session: Any, deadline: Deadline, now: datetime) -> Sequence[Outbound]:
        claimed.set()
        go.wait(10)
        return real(session, deadline, now)

    handlers[RULE_DUE] = held_back
    sweeper = Sweeper(session_factory(rig.engine), rig.clock, handlers, lambda _: None)
    sweeping = threading.Thread(target=sweeper.sweep_once)
    sweeping.start()
    assert claimed.wait(10)
    rig.link.inject(f"patrol/v1/{SITE}/sensor/{GAS}/telemetry",
                    {"id": "g-3", "ts": int(rig.clock.now().timestamp() * 1000), "kind": "gas",
                     "values": {"lel_pct": 12.0}})  # fmt: skip
    pumping = threading.Thread(target=rig.gateway.pump)
    pumping.start()
    wait_until(lambda: _lock_waits(rig.engine) > 0, what="the gateway waiting for the claimed deadline")
    go.set()
    sweeping.join(30)
    pumping.join(30)
    assert not sweeping.is_alive() and not pumping.is_alive()
    assert sweeper.failed_runs == 0
    [alarm] = _rows(rig, Alarm)
    assert (alarm.cleared_at, alarm.count) == (None, 2), "the gateway's reading committed, once, after the sweep"


def test_a_ticket_opened_with_nobody_on_duty_tells_the_control_room_and_escalates_once_someone_is(
    rig: Rig,
) -> None:
    """Escalation is never stuck (issue 7 item 6): with nobody on duty at any level the control room
    is told at once (event and notice), and the chain starts again after its first wait, reaching
    whoever is on duty by then."""
    sessions = session_factory(rig.engine)
    with transaction(sessions) as s:
        site = s.scalars(select(Site).where(Site.code == SITE)).one()
        roster, site.roster = site.roster, []
    _reading(rig, "g-1", lel_pct=12.0)
    [ticket] = _rows(rig, Ticket)
    assert [e.kind for e in _rows(rig, TicketEvent)][-1] == "nobody_on_duty"
    assert "ticket_escalated" in _notices(rig)
    with transaction(sessions) as s:
        s.scalars(select(Site).where(Site.code == SITE)).one().roster = roster
    settings = Settings(_env_file=None, database_url="sqlite://", mqtt_url="mqtt://127.0.0.1:1")  # type: ignore[call-arg]
    sweeper = Sweeper(sessions, rig.clock, deadline_handlers(settings, rig.gateway.incidents), lambda _: None)
    rig.clock.advance(2 * 60)
    sweeper.sweep_once()
    escalated = [e for e in _rows(rig, TicketEvent) if e.kind == "escalated"]
    assert [e.detail["level"] for e in escalated] == ["on_duty"] and escalated[0].ticket_id == ticket.id


def test_a_flapping_sensor_notifies_once_not_on_every_change(rig: Rig) -> None:
    """Issue 7 item 3: a sensor changing more than K times in the window is marked flapping and
    notifies once; its later changes are still published, quietly, and page nobody."""
    leak = "leak-b1-pump"
    for i in range(10):  # wet and dry every 30 s: 10 changes in 5 minutes
        body = {"id": f"w-{i}", "ts": int(rig.clock.now().timestamp() * 1000), "kind": "water_leak",
                "values": {"wet": i % 2 == 0}}  # fmt: skip
        rig.link.inject(f"patrol/v1/{SITE}/sensor/{leak}/telemetry", body)
        rig.gateway.pump()
        rig.clock.advance(30)
    alarm_notices = [k for k in _notices(rig) if k.startswith("alarm_")]
    assert alarm_notices.count("alarm_flapping") == 1
    flapped = alarm_notices.index("alarm_flapping")
    assert alarm_notices[flapped + 1 :] == [], "nothing pages after the flapping notice"
    events = [b for _, b in rig.link.published(f"/out/alarm/{leak}/water_leak")]
    after = events[[e["change"] for e in events].index("flapping") + 1 :]
    assert after and all(e["quiet"] for e in after), "later changes are published, quietly"
