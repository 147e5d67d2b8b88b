"""Incidents under faults (issue 7): an alarm storm through two gateways of one shared group, the
process that escalates tickets SIGKILLed mid-escalation, and InfluxDB going down under a gateway.

Each property is one of DESIGN.md's reliability properties applied to sensors: one active alarm per
(device, alarm type) and one open ticket per source, whoever races (unique partial indexes, rule
state locked); a deadline fires once, a crash loses none; nothing acked before its effect (and its
telemetry) is stored. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from core.alarm_rules import alarm_type_for
from core.broker_access import GATEWAY_ACCOUNT
from core.clock import ScaledClock
from core.procedures import procedure_for_alarm
from gateway.pipeline import Gateway
from gateway.telemetry_sink import InfluxSink
from storage import ticket_flow
from storage.db import session_factory, transaction
from storage.directory import load_directory
from storage.incident_notes import IncidentEnv, Told
from storage.models import Alarm, DeadlineRow, Device, InboundMessage, QuarantinedMessage, Site, Ticket, TicketEvent
from storage.procedures import load_procedures
from storage.sitefile.schema import SiteFile
from storage.tickets import source_key
from tests.integration.conftest import gateway_settings
from tests.support.accounts import SECOND_GATEWAY
from tests.support.incident_faults import blocked_on_a_lock, holding_ticket, left_in_session
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import SitePeers, end_gateway_sessions, end_session, wait_quiet, wait_until
from tests.support.sweeper_process import SweeperProcesses
from tests.support.victoria import VictoriaMetrics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SITE = "liyuan"


def _count(engine: Engine, stmt: Any) -> int:
    with session_factory(engine)() as s:
        return int(s.scalar(stmt) or 0)


def _logged(engine: Engine, ids: set[str] | None = None) -> int:
    stmt = select(func.count()).select_from(InboundMessage).where(InboundMessage.kind.in_(("telemetry", "event")))
    return _count(engine, stmt if ids is None else stmt.where(InboundMessage.msg_id.in_(ids)))


# --- 1. a storm through two gateways ------------------------------------------------------------

READINGS_PER_SENSOR = 20
# alarm-condition values of reading r (issue 7 thresholds: wet, 25 %LEL critical, 30 mA, smoke, fault)
ALARM_VALUES = {
    "water_leak": lambda r: {"wet": True, "level_mm": 5 + r},
    "gas": lambda r: {"lel_pct": 30 + r},
    "electric_leak": lambda r: {"leak_ma": 50 + r},
    "smoke": lambda r: {"alarm": True, "obscuration_pct": 10 + r},
    "elevator": lambda r: {"state": "fault", "fault_code": f"E{r}", "floor": 1 + r % 10},
}


def _storm(site: SiteFile, ts_ms: int) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """(message id, topic, payload) of 20 alarm readings of each of 50 sensors (every sensor that alarms
    on its first reading, and doors by their own alarm event, whose reading would wait 10 minutes),
    and each sensor's kind. A sensor's readings share one `ts`: one older than a reading already applied
    is ignored by rule (core/alarm_rules_eval.py), which would make the counts depend on the race."""
    sensors = [d for d in site.devices if d.kind in ALARM_VALUES]
    sensors += [d for d in site.devices if d.kind == "door"][: 50 - len(sensors)]
    assert len(sensors) == 50
    out = []
    for d in sensors:
        for r in range(READINGS_PER_SENSOR):
            mid = f"storm-{d.code}-{r:02d}"
            if d.kind == "door":
                body: dict[str, Any] = {"id": mid, "ts": ts_ms, "kind": "door", "state": "alarm", "detail": {"n": r}}
                out.append((mid, f"patrol/v1/{SITE}/sensor/{d.code}/event", json.dumps(body)))
            else:
                body = {"id": mid, "ts": ts_ms, "kind": d.kind, "values": ALARM_VALUES[d.kind](r)}
                out.append((mid, f"patrol/v1/{SITE}/sensor/{d.code}/telemetry", json.dumps(body)))
    return out, {d.code: d.kind for d in sensors}


def test_alarm_storm_twice_over_through_a_shared_group_gives_one_alarm_and_ticket_per_sensor(
    mosquitto: MosquittoBroker, engine: Engine, db_url: str, db_kind: str, demo_site: SiteFile
) -> None:
    """1,000 alarm readings of 50 sensors, each published twice, shuffled, through two gateways on `$share`
    (PostgreSQL; one gateway on SQLite): per sensor one alarm counting its 20 distinct readings, one ticket
    of the alarm type's procedure, a gas ticket's muster once (P5 §1); nothing quarantined, all acked."""
    group = f"g{uuid.uuid4().hex[:6]}"
    accounts = (GATEWAY_ACCOUNT, SECOND_GATEWAY) if db_kind == "postgresql" else (GATEWAY_ACCOUNT,)
    for name in accounts:
        end_gateway_sessions(mosquitto, name)
    settings = {"mqtt_shared_group": group, "batch_max_size": 50}
    gateways = [Gateway(gateway_settings(mosquitto, db_url, n).model_copy(update=settings), engine) for n in accounts]
    messages, kinds = _storm(demo_site, int(time.time() * 1000) - 60_000)
    sends = [m for m in messages for _ in range(2)]
    random.Random(20261130).shuffle(sends)
    peer = SitePeers(mosquitto)
    try:
        for gw in gateways:
            gw.start()
        for gw in gateways:
            wait_until(gw.link.subscribed.is_set, what="shared subscription")
        infos = [peer.sender(topic).client.publish(topic, payload, qos=1) for _, topic, payload in sends]
        for info in infos:
            info.wait_for_publish(30)
        wait_until(lambda: _logged(engine) >= len(messages), timeout=60, what=f"{len(messages)} readings logged")
        assert wait_quiet(lambda: _logged(engine), what="readings") == len(messages)
        wait_quiet(lambda: sum(gw.handled for gw in gateways), what="messages handled")
        handled = [gw.handled for gw in gateways]
    finally:
        peer.close()
        for gw in gateways:
            gw.stop()
    try:
        for name in accounts:  # the gateways acked every message: nothing comes again
            assert left_in_session(mosquitto, name) == [], f"{name} left messages unacked"
    finally:
        for name in accounts:
            end_session(mosquitto, name)
    assert sum(handled) == len(sends), f"each delivery committed once: {handled}"
    if len(handled) == 2:
        assert min(handled) > 0.2 * len(sends), f"the group did not split the load: {handled}"

    with session_factory(engine)() as s:
        code_of = {i: c for i, c in s.execute(select(Device.id, Device.code))}
        alarms = s.scalars(select(Alarm)).all()
        tickets = s.scalars(select(Ticket)).all()
        musters = Counter(s.scalars(select(TicketEvent.ticket_id).where(TicketEvent.kind == "muster")))
        quarantined = s.scalars(select(QuarantinedMessage.reason)).all()
    assert quarantined == [], "no id conflicts, nothing refused"
    expected_types = {code: alarm_type_for(kind) for code, kind in kinds.items()}
    assert sorted((code_of[a.device_id], a.alarm_type) for a in alarms) == sorted(expected_types.items())
    assert {code_of[a.device_id]: a.count for a in alarms} == dict.fromkeys(kinds, READINGS_PER_SENSOR)
    assert all(a.cleared_at is None and a.ticket_id is not None for a in alarms)
    by_device = {code_of[t.device_id]: t for t in tickets if t.device_id is not None}
    assert len(tickets) == len(by_device) == 50, "one ticket per sensor"
    for a in alarms:
        code = code_of[a.device_id]
        procedure = procedure_for_alarm(a.alarm_type)
        assert (by_device[code].id, by_device[code].procedure) == (a.ticket_id, procedure)
        assert by_device[code].source_key == source_key(a.device_id, procedure)
    gas_tickets = {t.id for code, t in by_device.items() if kinds[code] == "gas"}
    assert musters == dict.fromkeys(gas_tickets, 1), "a critical gas alarm musters the guards once per ticket"


# --- 2. SIGKILL of the escalating process ---------------------------------------------------------

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # Monday 10:00 in Asia/Shanghai: someone is on duty at every level
SPEED = 120.0  # a simulated minute is half a real second
# the default chain (core/procedures.py) of water_ingress: level, then its reminders
BEFORE_KILL = [
    ("escalated", "on_duty"),
    ("reminder", "on_duty"),
    ("escalated", "shift_leader"),
    ("reminder", "shift_leader"),
    ("reminder", "shift_leader"),
    ("escalated", "supervisor"),
    ("reminder", "supervisor"),
]


def _open_ticket(engine: Engine, env: IncidentEnv, now: datetime) -> int:
    """A water ingress ticket of the pump room's leak sensor, opened as an alarm opens it (P5 §2.4.1)."""
    with transaction(session_factory(engine)) as s:
        site_id = s.scalars(select(Site.id).where(Site.code == SITE)).one()
        device_id = s.scalars(select(Device.id).where(Device.code == "leak-b1-pump")).one()
        procedure = ticket_flow.procedure_of(env, "water_ingress")
        ticket, created = ticket_flow.start(
            s,
            env,
            Told(),
            site_id=site_id,
            procedure=procedure,
            severity="major",
            now=now,
            source=source_key(device_id, procedure.code),
            device_id=device_id,
        )
        assert created
        return ticket.id


def _escalation(engine: Engine, ticket_id: int) -> list[tuple[str, str | None]]:
    with session_factory(engine)() as s:
        rows = s.execute(
            select(TicketEvent.kind, TicketEvent.detail)
            .where(TicketEvent.ticket_id == ticket_id)
            .where(TicketEvent.kind.in_(("escalated", "reminder", "acknowledged")))
            .order_by(TicketEvent.id)
        ).all()
    return [(kind, (detail or {}).get("level")) for kind, detail in rows]


def _wait_for(engine: Engine, ticket_id: int, expected: Sequence[tuple[str, str | None]], what: str) -> None:
    try:
        wait_until(lambda: _escalation(engine, ticket_id) == list(expected), timeout=30, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; escalation so far: {_escalation(engine, ticket_id)}") from None


def _escalation_deadline(engine: Engine, ticket_id: int, state: str = "pending") -> list[datetime]:
    with session_factory(engine)() as s:
        return list(
            s.scalars(
                select(DeadlineRow.due_at).where(
                    DeadlineRow.kind == ticket_flow.ESCALATE,
                    DeadlineRow.subject == f"ticket:{ticket_id}",
                    DeadlineRow.state == state,
                )
            )
        )


def test_escalation_loses_and_repeats_no_level_when_its_sweeper_is_sigkilled_and_stops_when_acknowledged(
    engine: Engine, db_url: str, db_kind: str, tmp_path: Path
) -> None:
    """P5 §2.3 escalation on_duty → shift_leader → supervisor → manager with reminders, run by the
    product's sweeper in a process of its own on simulated time. The process is SIGKILLed inside
    the sweep that moves to the manager level (PostgreSQL: it has claimed the deadline and waits for
    the ticket's lock) and a new one started: every level and reminder is recorded exactly once. The
    acknowledgement (ticket_flow.acknowledge) cancels the rest: no manager reminder ever comes."""
    env = IncidentEnv(load_procedures())
    clock = ScaledClock(T0, SPEED)
    sweepers = SweeperProcesses(db_url, tmp_path, clock, SPEED, module="tests.support.escalation_process")
    try:
        sweepers.start("esc-a")
        ticket_id = _open_ticket(engine, env, clock.now())
        _wait_for(engine, ticket_id, BEFORE_KILL, "the supervisor reminder")
        [manager_due] = _escalation_deadline(engine, ticket_id)
        with holding_ticket(engine, db_url, ticket_id):
            if db_kind == "postgresql":
                wait_until(lambda: blocked_on_a_lock(engine, "esc-a"), timeout=30, what="esc-a blocked in its sweep")
            else:  # the sweep waits for SQLite's write lock; nothing to see from outside but the time
                wait_until(lambda: clock.now() > manager_due + timedelta(minutes=1), what="the manager level due")
            sweepers.kill("esc-a")
            assert _escalation_deadline(engine, ticket_id) == [manager_due], "the killed sweep committed nothing"
        assert _escalation(engine, ticket_id) == BEFORE_KILL
        sweepers.start("esc-b")
        with_manager = [*BEFORE_KILL, ("escalated", "manager")]
        _wait_for(engine, ticket_id, with_manager, "the manager level")
        with transaction(session_factory(engine)) as s:
            ticket_flow.acknowledge(s, env, ticket_id, "G013", clock.now())
        [reminder_due] = _escalation_deadline(engine, ticket_id, "cancelled")
        wait_until(lambda: clock.now() > reminder_due + timedelta(minutes=2), what="past the manager reminder")
        sweepers.stop("esc-b")
    finally:
        sweepers.cleanup()
    assert _escalation(engine, ticket_id) == [*with_manager, ("acknowledged", None)]
    assert _escalation_deadline(engine, ticket_id) == []
    with session_factory(engine)() as s:
        assert s.get(Ticket, ticket_id).state == "acknowledged"  # type: ignore[union-attr]


# --- 3. InfluxDB down under a gateway -------------------------------------------------------------

INFLUX_SERIES = '{__name__=~"(gas|water_leak|electric_leak|smoke)_.*"}'


def _reading(mid: str, code: str, kind: str, ts_ms: int, values: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return mid, f"patrol/v1/{SITE}/sensor/{code}/telemetry", {"id": mid, "ts": ts_ms, "kind": kind, "values": values}


def _failures() -> float:
    return REGISTRY.get_sample_value("patrol_batch_failures_total") or 0.0


def _started(settings: Any, engine: Engine) -> Gateway:
    gw = Gateway(settings, engine)
    gw.start()
    wait_until(gw.link.subscribed.is_set, what="gateway subscription")
    return gw


def test_influxdb_down_holds_readings_unacked_and_they_land_once_when_it_is_back(
    mosquitto: MosquittoBroker,
    engine: Engine,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PATROL_INFLUX_URL names a VictoriaMetrics (InfluxDB v2 write API). Readings are written with the
    place as tags. With the server stopped, a batch is not committed (no log row, no alarm, nothing
    quarantined) and not acked; the gateway stops, the server comes back, the next gateway gets the
    readings again from its broker session and writes and commits them once."""
    vm = VictoriaMetrics(tmp_path / "vm")
    vm.start()
    monkeypatch.setenv("PATROL_INFLUX_URL", vm.url)
    monkeypatch.setenv("PATROL_INFLUX_TIMEOUT_S", "1")
    end_gateway_sessions(mosquitto, GATEWAY_ACCOUNT)
    settings = gateway_settings(mosquitto, db_url)
    t = (int(time.time()) - 120) * 1000
    first = [
        _reading("if-1", "gas-b1-shop101", "gas", t, {"lel_pct": 12}),
        _reading("if-2", "leak-b1-pump", "water_leak", t, {"wet": True, "level_mm": 4}),
        _reading("if-3", "elec-b1-sw", "electric_leak", t, {"leak_ma": 5}),
    ]
    second = [
        _reading("if-4", "gas-b1-shop101", "gas", t + 10_000, {"lel_pct": 14}),
        _reading("if-5", "smoke-fcc", "smoke", t + 10_000, {"alarm": True}),
        _reading("if-6", "elec-b1-sw", "electric_leak", t + 10_000, {"leak_ma": 50}),
    ]
    second_ids = {mid for mid, _, _ in second}
    peer = SitePeers(mosquitto)
    gw = _started(settings, engine)
    try:
        assert isinstance(gw.incidents.sink, InfluxSink) and gw.incidents.sink.url == vm.url
        for _, topic, body in first:
            peer.publish(topic, body)
        wait_until(lambda: _logged(engine) >= 3, what="the first readings committed")
        series = vm.export(INFLUX_SERIES)
        assert {(x.name, x.labels["device"]) for x in series} == {
            ("gas_lel_pct", "gas-b1-shop101"),
            ("water_leak_wet", "leak-b1-pump"),
            ("water_leak_level_mm", "leak-b1-pump"),
            ("electric_leak_leak_ma", "elec-b1-sw"),
        }
        with session_factory(engine)() as s:
            directory = load_directory(s)
        for sample in series:
            d = directory.devices[SITE, sample.labels["device"]]
            where = {"site": SITE, "building": d.building, "floor": str(d.floor), "location": d.location}
            assert sample.labels == {k: v for k, v in where.items() if v} | {"device": d.code}, sample

        vm.stop()
        failures = _failures()
        for _, topic, body in second:
            peer.publish(topic, body)
        wait_until(lambda: _failures() >= failures + 2, what="the batch failing on the stopped server")
        wait_quiet(lambda: (_logged(engine), _count(engine, select(func.count(QuarantinedMessage.id)))))
        assert _logged(engine, second_ids) == 0, "a reading whose telemetry was not written was committed"
        assert _count(engine, select(func.count(QuarantinedMessage.id))) == 0, "readings were quarantined"
        assert _count(engine, select(func.count(Alarm.id)).where(Alarm.alarm_type == "smoke")) == 0
        gw.stop()  # with the batch unacked: the broker keeps it for the session
        vm.start()
        gw = _started(settings, engine)
        wait_until(lambda: _logged(engine) >= 6, what="the held readings committed after the restart")
        assert wait_quiet(lambda: _logged(engine), what="readings") == 6
    finally:
        peer.close()
        gw.stop()
        vm.stop()
    try:
        assert left_in_session(mosquitto, GATEWAY_ACCOUNT) == [], "every reading acked in the end"
    finally:
        end_gateway_sessions(mosquitto, GATEWAY_ACCOUNT)
    vm.start()
    try:
        samples = {(s.name, s.labels["device"]): s.samples for s in vm.export(INFLUX_SERIES)}
    finally:
        vm.stop()
    assert samples == {
        ("gas_lel_pct", "gas-b1-shop101"): [(t, 12.0), (t + 10_000, 14.0)],
        ("water_leak_wet", "leak-b1-pump"): [(t, 1.0)],
        ("water_leak_level_mm", "leak-b1-pump"): [(t, 4.0)],
        ("electric_leak_leak_ma", "elec-b1-sw"): [(t, 5.0), (t + 10_000, 50.0)],
        ("smoke_alarm", "smoke-fcc"): [(t + 10_000, 1.0)],
    }
    with session_factory(engine)() as s:
        code_of = {i: c for i, c in s.execute(select(Device.id, Device.code))}
        alarms = {(code_of[a.device_id], a.alarm_type): (a.severity, a.count) for a in s.scalars(select(Alarm))}
        tickets = Counter(code_of[d] for d in s.scalars(select(Ticket.device_id)) if d is not None)
    assert alarms == {
        ("gas-b1-shop101", "gas"): ("warning", 2),
        ("leak-b1-pump", "water_leak"): ("major", 1),
        ("elec-b1-sw", "electric_leak"): ("major", 1),
        ("smoke-fcc", "smoke"): ("critical", 1),
    }
    assert tickets == dict.fromkeys(["gas-b1-shop101", "leak-b1-pump", "elec-b1-sw", "smoke-fcc"], 1)
