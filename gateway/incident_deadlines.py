"""The deadline engine's incident work: a rule's duration or clear delay completing with no new
reading, a sensor gone silent, a ticket's next escalation step, and out/ events decided by the
API (published by the gateway, which holds the broker account that may write out/)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.alarm_rules import evaluate_due, offline_due
from core.deadlines import Deadline, DeadlineHandler
from core.outbound import Outbound
from gateway.handlers.readings import SILENT, load_state, source_of
from gateway.incidents import Incidents, rule_for
from storage import deadlines
from storage.alarm_flow import RULE_DUE, apply, schedule_due
from storage.alarms import lock_rule_state, save_rule_state
from storage.directory import device_entry
from storage.incident_notes import OUT_PUBLISH, Told, stored_events
from storage.models import Device, SensorLatest
from storage.ticket_flow import ESCALATE, escalation_due


def incident_handlers(incidents: Incidents) -> dict[str, DeadlineHandler]:
    env = incidents.env

    def rule_due(session: Session, deadline: Deadline, now: datetime) -> Sequence[Outbound]:
        """A duration (`for_s`), clear delay, door limit or end of flapping has come."""
        told = Told()
        found = device_entry(session, int(deadline.payload["device_id"]))
        if found is None:
            return []  # the device is gone: nothing to decide
        device, site = found
        alarm_type = str(deadline.payload["alarm_type"])
        rule = rule_for(site, device)
        row_id, raw = lock_rule_state(session, device.id, alarm_type, now, nowait=True)
        state = load_state(raw)
        decision = evaluate_due(rule, state, now)
        src = source_of(device)
        apply(session, env, told, src, alarm_type, decision, now, now, value=dict(state.last_value), reading=False)
        save_rule_state(session, row_id, decision.state.to_json(), now)
        if decision.due_at is not None and decision.due_at > now:
            schedule_due(session, src, alarm_type, decision, now)
        return told.events

    def silent(session: Session, deadline: Deadline, now: datetime) -> Sequence[Outbound]:
        """Nothing heard from a sensor for its expected interval × missed intervals: offline."""
        told = Told()
        found = device_entry(session, int(deadline.payload["device_id"]))
        if found is None:
            return []
        device, site = found
        rule = rule_for(site, device)
        scheduled_from = deadline.due_at - timedelta(seconds=rule.expected_interval_s * rule.missed_intervals)
        reading = session.scalar(select(SensorLatest.observed_at).where(SensorLatest.device_id == device.id))
        status = session.scalar(select(Device.status_at).where(Device.id == device.id, Device.online.is_(True)))
        last_seen = max(t for t in (scheduled_from, reading, status) if t is not None)  # a reading or a heartbeat
        row_id, raw = lock_rule_state(session, device.id, "offline", now, nowait=True)
        decision = offline_due(rule, load_state(raw), last_seen, now)
        apply(
            session,
            env,
            told,
            source_of(device),
            "offline",
            decision,
            now,
            now,
            value={"silent_since": last_seen.isoformat()},
            source="status",
        )
        save_rule_state(session, row_id, decision.state.to_json(), now)
        if decision.action is None and decision.due_at is not None and decision.due_at > now:
            deadlines.schedule(session, SILENT, deadline.subject, decision.due_at, deadline.payload, now)  # heard since
        return told.events

    def escalate(session: Session, deadline: Deadline, now: datetime) -> Sequence[Outbound]:
        ticket_id = int(deadline.subject.split(":", 1)[1])
        return escalation_due(session, env, ticket_id, dict(deadline.payload), now).events

    def publish(session: Any, deadline: Deadline, now: datetime) -> Sequence[Outbound]:
        return stored_events(deadline.payload)

    return {RULE_DUE: rule_due, SILENT: silent, ESCALATE: escalate, OUT_PUBLISH: publish}
