"""Readings → alarm → emergency ticket, driven through the gateway pipeline on a fake link and a
fake clock against a real database (both kinds), with the deadline engine run in simulated time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from gateway.sweeper import Sweeper
from storage.db import session_factory, transaction
from storage.models import Alarm, Ticket, TicketEvent, TicketStep
from storage.sitefile.schema import SiteFile
from storage.ticket_flow import acknowledge
from tests.support.rig import Rig, make_rig, sweeper_for

SITE = "liyuan"
GAS = "gas-b1-shop101"
T0 = datetime(2025, 11, 28, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: the day shift is on duty


@pytest.fixture
def rig(engine: Engine, db_url: str) -> Rig:
    return make_rig(engine, db_url, now=T0)


def _reading(rig: Rig, device: str, msg_id: str, kind: str, **values: Any) -> None:
    body = {"id": msg_id, "ts": int(rig.clock.now().timestamp() * 1000), "kind": kind, "values": values}
    rig.link.inject(f"patrol/v1/{SITE}/sensor/{device}/telemetry", body)


def _sweeper(rig: Rig) -> Sweeper:
    return sweeper_for(rig)


def _events(rig: Rig, suffix: str) -> list[dict[str, Any]]:
    return [body for _, body in rig.link.published(suffix)]


def test_a_gas_leak_opens_one_alarm_and_one_ticket_with_the_procedure_steps_in_order(rig: Rig) -> None:
    """P5 §2.4.5(2): a gas reading over 10 %LEL is an alarm and a ticket carrying the gas-leak
    procedure in order, its safety-critical step (no switches, phones, radios or torches) marked,
    for security and engineering, acknowledged within 2 min (P8 §4.1(2) default)."""
    _reading(rig, GAS, "g-1", "gas", lel_pct=12.0)
    rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        [alarm] = s.scalars(select(Alarm)).all()
        [ticket] = s.scalars(select(Ticket)).all()
        steps = s.scalars(select(TicketStep).where(TicketStep.ticket_id == ticket.id).order_by(TicketStep.position))
        codes = [(st.code, st.safety_critical) for st in steps]
    assert (alarm.alarm_type, alarm.severity, alarm.ticket_id) == ("gas", "warning", ticket.id)
    assert (ticket.procedure, ticket.departments, ticket.state) == ("gas_leak", ["security", "engineering"], "open")
    assert datetime.fromisoformat(ticket.deadlines["ack_by"]) == T0 + timedelta(minutes=2)
    assert codes[-1] == ("record", False), "P0 §5: every ticket ends with the incident record"
    assert ("no_sparks", True) in codes
    assert [c for c, _ in codes].index("no_sparks") < [c for c, _ in codes].index("record")
    [raised] = [e for e in _events(rig, f"/out/alarm/{GAS}/gas") if e["change"] == "raised"]
    assert raised["severity"] == "warning" and raised["ticket_id"] == ticket.id
    changes = [e["change"] for e in _events(rig, f"/out/ticket/{ticket.id}")]
    assert changes[:2] == ["opened", "escalated"]


def test_repeats_attach_a_rise_is_at_once_and_a_critical_gas_alarm_musters_the_guards(rig: Rig) -> None:
    """P5 §2.4.5(2) and P5 §1: 30 %LEL is critical at once (evacuate) and calls every guard on
    duty to the emergency muster; repeats update the one alarm and the one ticket."""
    _reading(rig, GAS, "g-1", "gas", lel_pct=12.0)
    rig.gateway.pump()
    rig.clock.advance(5)
    _reading(rig, GAS, "g-2", "gas", lel_pct=30.0)
    rig.clock.advance(5)
    _reading(rig, GAS, "g-3", "gas", lel_pct=28.0)
    _reading(rig, GAS, "g-3", "gas", lel_pct=28.0)  # the same message again: no effect
    rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        [alarm] = s.scalars(select(Alarm)).all()
        [ticket] = s.scalars(select(Ticket)).all()
        kinds = list(s.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)))
        muster = s.scalars(select(TicketEvent).where(TicketEvent.kind == "muster")).one()
    assert (alarm.severity, alarm.peak_severity, alarm.count) == ("critical", "critical", 3)
    assert alarm.last_value == {"lel_pct": 28.0}
    assert ticket.severity == "critical"
    assert kinds.count("muster") == 1
    assert {"G001", "G006", "G013", "G015"} <= set(muster.detail["recipients"])
    assert not {"G007", "E002"} & set(muster.detail["recipients"]), "only guards on duty now"


def test_clearing_waits_for_the_clear_delay_even_without_another_reading_and_leaves_the_ticket_open(
    rig: Rig,
) -> None:
    """Hysteresis: gas falls back only after 60 s below (the deadline engine completes the delay
    with no further reading); the ticket notes the clearing but stays open (issue 7 item 5)."""
    sweeper = _sweeper(rig)
    _reading(rig, GAS, "g-1", "gas", lel_pct=12.0)
    rig.gateway.pump()
    rig.clock.advance(10)
    _reading(rig, GAS, "g-2", "gas", lel_pct=1.0)
    rig.gateway.pump()
    rig.clock.advance(30)
    sweeper.sweep_once()
    with session_factory(rig.engine)() as s:
        assert s.scalars(select(Alarm.cleared_at)).one() is None, "still inside the clear delay"
    rig.clock.advance(31)
    sweeper.sweep_once()
    with session_factory(rig.engine)() as s:
        alarm = s.scalars(select(Alarm)).one()
        ticket = s.scalars(select(Ticket)).one()
        kinds = list(s.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)))
    assert alarm.cleared_at == T0 + timedelta(seconds=71)
    assert ticket.state == "open" and ticket.alarm_cleared_at is not None
    assert "alarm_cleared" in kinds
    assert [e["change"] for e in _events(rig, f"/out/alarm/{GAS}/gas")][-1] == "cleared"


def _escalations(rig: Rig, ticket_id: int) -> list[tuple[str, str]]:
    with session_factory(rig.engine)() as s:
        rows = s.scalars(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind.in_(["escalated", "reminder"]))
            .order_by(TicketEvent.id)
        )
        return [(e.kind, e.detail["level"]) for e in rows]


def _minutes(rig: Rig, sweeper: Sweeper, minutes: int) -> None:
    for _ in range(minutes):  # a sweep each simulated minute
        rig.clock.advance(60)
        sweeper.sweep_once()


def _water_ticket(rig: Rig) -> int:
    _reading(rig, "leak-b1-pump", "w-1", "water_leak", wet=True)
    rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        return s.scalars(select(Ticket.id).where(Ticket.procedure == "water_ingress")).one()


def test_an_unacknowledged_ticket_escalates_level_by_level_up_to_the_manager_and_no_further(rig: Rig) -> None:
    """Escalation (issue 7 item 6; P5 §2.3: supervisors and the manager command): on-duty staff,
    then the shift leader, the supervisor and the manager, each after its wait; then it stops."""
    sweeper = _sweeper(rig)
    ticket_id = _water_ticket(rig)
    _minutes(rig, sweeper, 60)
    levels = [level for kind, level in _escalations(rig, ticket_id) if kind == "escalated"]
    assert levels == ["on_duty", "shift_leader", "supervisor", "manager"]
    sent = len(_escalations(rig, ticket_id))
    _minutes(rig, sweeper, 60)
    assert len(_escalations(rig, ticket_id)) == sent, "bounded: after the last level nothing more is sent"


def test_acknowledging_stops_the_escalation(rig: Rig) -> None:
    """Acknowledgement stops the chain (issue 7 item 6): no level or reminder after it."""
    sweeper = _sweeper(rig)
    ticket_id = _water_ticket(rig)
    _minutes(rig, sweeper, 3)
    with transaction(session_factory(rig.engine)) as s:
        acknowledge(s, rig.gateway.incidents.env, ticket_id, "E002", rig.clock.now())
    sent = _escalations(rig, ticket_id)
    assert [level for _, level in sent][-1] in ("on_duty", "shift_leader")
    _minutes(rig, sweeper, 60)
    assert _escalations(rig, ticket_id) == sent


def test_a_door_open_longer_than_its_limit_alarms_at_the_due_time_without_another_reading(rig: Rig) -> None:
    """P1 §2.9: a machine-room door open longer than 10 min is an alarm; the duration completes
    in the deadline engine at its due time, with no further reading from the sensor."""
    sweeper = _sweeper(rig)
    _reading(rig, "door-b1-pw", "d-1", "door", open=True)
    rig.gateway.pump()
    rig.clock.advance(9 * 60 + 59)
    sweeper.sweep_once()
    assert rig.count(select(func.count()).select_from(Alarm)) == 0, "not before its 10 minutes"
    rig.clock.advance(1)
    sweeper.sweep_once()
    with session_factory(rig.engine)() as s:
        alarm = s.scalars(select(Alarm)).one()
        ticket = s.scalars(select(Ticket)).one()
    assert (alarm.alarm_type, alarm.opened_at) == ("door_open", T0 + timedelta(minutes=10))
    assert ticket.procedure == "door_open"


def test_a_silent_sensor_goes_offline_and_comes_back_with_its_next_reading(rig: Rig) -> None:
    """A sensor silent for 3 × its expected interval (15 min) is offline: an alarm and a
    maintenance ticket for engineering; its next reading clears the alarm."""
    sweeper = _sweeper(rig)
    _reading(rig, GAS, "g-1", "gas", lel_pct=1.0)
    rig.gateway.pump()
    rig.clock.advance(10 * 60)
    _reading(rig, GAS, "g-2", "gas", lel_pct=1.0)  # heard again: the silence counts from here
    rig.gateway.pump()
    rig.clock.advance(14 * 60)
    sweeper.sweep_once()
    assert rig.count(select(func.count()).select_from(Alarm)) == 0, "15 min from the last reading, not the first"
    rig.clock.advance(61)
    sweeper.sweep_once()
    with session_factory(rig.engine)() as s:
        alarm = s.scalars(select(Alarm)).one()
        ticket = s.scalars(select(Ticket)).one()
    assert (alarm.alarm_type, alarm.cleared_at) == ("offline", None)
    assert (ticket.procedure, ticket.departments) == ("device_offline", ["engineering"])
    _reading(rig, GAS, "g-3", "gas", lel_pct=1.0)
    rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        assert s.scalars(select(Alarm.cleared_at)).one() is not None


def test_the_guard_on_duty_who_signed_in_nearest_is_named_first_responder(rig: Rig, demo_site: SiteFile) -> None:
    """Issue 7 item 6: the guard on patrol nearest the location (same building, then nearest floor,
    by last sign-in) is named first responder of a new ticket."""
    lobby = next(loc.tag for loc in demo_site.locations if loc.code == "B1-F01-LOBBY")
    tap = {"id": "t-1", "ts": int(rig.clock.now().timestamp() * 1000), "uid": lobby}
    rig.link.inject(f"patrol/v1/{SITE}/reader/rdr-h04/tap", tap)  # G004's handheld, in building 1
    rig.gateway.pump()
    rig.clock.advance(60)
    _reading(rig, "leak-b1-pump", "w-1", "water_leak", wet=True)
    rig.gateway.pump()
    with session_factory(rig.engine)() as s:
        ticket = s.scalars(select(Ticket)).one()
    assert ticket.first_responder == "G004", "not G001, whom the code order alone would pick"
    [opened] = [e for e in _events(rig, f"/out/ticket/{ticket.id}") if e["change"] == "opened"]
    assert opened["first_responder"] == "G004"
