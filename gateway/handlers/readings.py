"""Telemetry and device events → telemetry store, latest values, alarm rules, alarms and tickets.

Logged once each (`log_new`); only new messages are judged. The batch's readings are written to
the telemetry sink first (InfluxDB, synchronously: if it is down the batch fails and is not acked,
so nothing is lost), then each sensor's rule state is locked (devices in id order, so two
gateways cannot deadlock), its readings and events applied in the order they were observed, and
its state stored. A reading's time is its `ts`, or its receipt time when the sensor's clock is off.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.alarm_rules import (
    Decision,
    KindRule,
    RuleState,
    StatusAlarm,
    alarm_type_for,
    evaluate,
    evaluate_event,
    evaluate_status,
    silence_limit,
)
from core.directory import DeviceEntry
from core.ingest import first_of_each
from gateway.effects import Effects
from gateway.handlers.base import Context, key, log_new
from gateway.messages import Accepted
from gateway.telemetry_sink import ReadingPoint
from storage.alarm_flow import Source, apply, schedule_due
from storage.alarms import Where, lock_rule_state, save_rule_state
from storage.bulk_sensors import lock_rule_states, save_rule_states, schedule_absent, store_latest
from storage.incident_notes import Told
from storage.models import Alarm
from storage.models.incidents import ALARM_ACTIVE

SILENT = "device.silent"


def handle_sensor_messages(session: Session, msgs: list[Accepted], ctx: Context) -> Effects:
    """Telemetry and events of one batch together, so each sensor's rule state is locked once."""
    effects = Effects()
    logged = log_new(session, msgs, ctx, effects)
    new = [m for m in first_of_each(msgs, key) if key(m) in logged.new]
    if not new:
        return effects
    at = {key(m): logged.times[key(m)].at for m in new}
    readings = [m for m in new if m.channel == "telemetry"]
    ctx.incidents.sink.write([_point(m, at[key(m)]) for m in readings])
    _store_latest(session, readings, at)
    told = Told()
    by_device: dict[int, list[Accepted]] = defaultdict(list)
    for m in new:
        by_device[m.device.id].append(m)
    held = lock_rule_states(session, [(d, alarm_type_for(ms[0].device.kind)) for d, ms in by_device.items()], ctx.now)
    states: dict[int, dict[str, Any]] = {}
    silent: list[tuple[str, datetime, Mapping[str, Any]]] = []
    for device_id in sorted(by_device):
        mine = sorted(by_device[device_id], key=lambda m: at[key(m)])
        row_id, raw = held[(device_id, alarm_type_for(mine[0].device.kind))]
        states[row_id] = _judge(session, ctx, told, mine, at, raw)
        # the silence check: scheduled once, then moved by its own handler to the newest reading + limit
        rule = ctx.incidents.rules.rule(ctx.directory, mine[0].device)
        silent.append((f"silent:{device_id}", silence_limit(rule, at[key(mine[-1])]), {"device_id": device_id}))
    save_rule_states(session, states, ctx.now)
    schedule_absent(session, SILENT, silent, ctx.now)
    _back_online(session, ctx, told, by_device, at)
    effects.events += told.events
    return effects


def source_of(device: DeviceEntry) -> Source:
    where = Where(device.location_id, device.building_id, device.floor)
    return Source(device.id, device.site_id, device.site_code, device.code, where)


def load_state(raw: Mapping[str, Any]) -> RuleState:
    return RuleState.from_json(raw) if raw else RuleState()


def _judge(
    session: Session, ctx: Context, told: Told, msgs: list[Accepted], at: dict[Any, datetime], raw: dict[str, Any]
) -> dict[str, Any]:
    """One sensor's readings and events of this batch, in the order observed, on its locked rule
    state; returns the state to store."""
    device = msgs[0].device
    rule = ctx.incidents.rules.rule(ctx.directory, device)
    alarm_type = alarm_type_for(device.kind)
    src = source_of(device)
    state = before = load_state(raw)
    env = ctx.incidents.env
    decision: Decision | None = None
    for m in msgs:
        when = at[key(m)]
        if m.channel == "telemetry":
            values = m.model.values
            decision = evaluate(rule, state, when, values)
            apply(session, env, told, src, alarm_type, decision, when, ctx.now, value=values)
        else:
            ev = m.model
            decision = evaluate_event(rule, state, when, ev.kind, ev.state, ev.code, ev.detail)
            shown = {"event": ev.state, **({"code": ev.code} if ev.code else {}), **ev.detail}
            apply(
                session, env, told, src, alarm_type, decision, when, ctx.now, value=shown, source="event", code=ev.code
            )
        state = decision.state
    assert decision is not None
    if decision.due_at is not None or before.pending or before.clearing or before.flapping:
        schedule_due(session, src, alarm_type, decision, ctx.now)  # else no rule deadline can be pending
    return state.to_json()


def _back_online(
    session: Session, ctx: Context, told: Told, by_device: dict[int, list[Accepted]], at: dict[Any, datetime]
) -> None:
    """A sensor that was offline for silence and speaks again is back: its offline alarm clears."""
    offline = session.scalars(
        select(Alarm.device_id).where(Alarm.device_id.in_(list(by_device)), Alarm.alarm_type == "offline", ALARM_ACTIVE)
    ).all()
    for device_id in sorted(offline):
        msgs = by_device[device_id]
        # receipt time, as for the status messages judged on the same offline rule state: a device
        # clock minutes fast must not make the next Last Will look older than this reading
        last = max(m.raw.received_at for m in msgs)
        status_changed(session, ctx, told, msgs[0].device, "offline", last, online=True)


def status_changed(
    session: Session,
    ctx: Context,
    told: Told,
    device: DeviceEntry,
    alarm_type: StatusAlarm,
    observed_at: datetime,
    *,
    online: bool,
    battery_pct: int | None = None,
) -> None:
    """The offline or low-battery alarm of one device, from a status message or a reading."""
    rule: KindRule = ctx.incidents.rules.rule(ctx.directory, device)
    row_id, raw = lock_rule_state(session, device.id, alarm_type, ctx.now)
    state = load_state(raw)
    decision = evaluate_status(rule, alarm_type, state, observed_at, online=online, battery_pct=battery_pct)
    shown: dict[str, Any] = {"online": online} if alarm_type == "offline" else {"battery_pct": battery_pct}
    src = source_of(device)
    env = ctx.incidents.env
    apply(session, env, told, src, alarm_type, decision, observed_at, ctx.now, value=shown, source="status")
    save_rule_state(session, row_id, decision.state.to_json(), ctx.now)


def _point(msg: Accepted, at: datetime) -> ReadingPoint:
    d = msg.device
    floor = str(d.floor) if d.floor is not None else None
    tel = msg.model
    return ReadingPoint(tel.kind, d.site_code, d.code, d.building, floor, d.location, at, tel.values, str(msg.msg_id))


def _store_latest(session: Session, readings: list[Accepted], at: dict[Any, datetime]) -> None:
    """Each sensor's newest reading; an older one arriving late does not replace it."""
    newest: dict[int, Accepted] = {}
    for m in readings:
        held = newest.get(m.device.id)
        if held is None or at[key(m)] >= at[key(held)]:
            newest[m.device.id] = m
    if not newest:
        return
    rows = [
        {
            "device_id": device_id,
            "site_id": m.device.site_id,
            "kind": m.model.kind,
            "observed_at": at[key(m)],
            "values": dict(m.model.values),
            "msg_id": str(m.msg_id),
        }
        for device_id, m in sorted(newest.items())
    ]
    store_latest(session, rows)
