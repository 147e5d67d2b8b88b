"""What a rule decision does: the alarm raised, repeated, risen, fallen or cleared; its ticket
opened or attached; the deadline that finishes a duration scheduled; everyone told.

Called by the gateway (readings, events, status) and the deadline engine (durations, silence)
in their transactions, with the rule state's row already locked (storage.alarms.lock_rule_state),
so two gateways applying readings of one sensor decide one after the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.alarm_rules import Decision
from core.outbound import Name
from core.procedures import procedure_for_alarm
from core.severity import severity_rank
from core.tickets import TicketRuleError
from core.webhooks import NoticeKind
from storage import alarms as rows
from storage import deadlines, ticket_flow
from storage.alarms import Where
from storage.incident_notes import IncidentEnv, Told, alarm_event, alarm_notice, site_code, tell
from storage.models import Alarm, Ticket, TicketEvent
from storage.tickets import add_event, source_key

RULE_DUE = "alarm.rule_due"


@dataclass(frozen=True, slots=True)
class Source:
    """The device an alarm is about, and where it is."""

    device_id: int
    site_id: int
    site: str  # the site's code
    device: str  # the device's code
    where: Where


def rule_subject(device_id: int, alarm_type: str) -> str:
    return f"rule:{device_id}:{alarm_type}"


def schedule_due(session: Session, src: Source, alarm_type: str, decision: Decision, now: datetime) -> None:
    """A duration, clear delay or door limit completes at `due_at` even if no reading comes."""
    subject = rule_subject(src.device_id, alarm_type)
    if decision.due_at is None:
        deadlines.cancel(session, RULE_DUE, subject, now)
    else:
        payload = {"device_id": src.device_id, "alarm_type": alarm_type}
        deadlines.schedule(session, RULE_DUE, subject, decision.due_at, payload, now)


@dataclass(frozen=True, slots=True)
class _Step:
    """One decision being applied: where it happens and what it says, so the helpers below take
    this and the alarm instead of ten arguments each."""

    session: Session
    env: IncidentEnv
    told: Told
    src: Source
    decision: Decision
    at: datetime  # when it was observed (a reading's time; a due time)
    now: datetime
    value: dict[str, Any]
    snoozed: bool

    def tell(self, alarm: Alarm, change: str, notice: NoticeKind | None) -> None:
        """The alarm's out/ event, and a notice unless the change is quiet (flapping, snoozed)."""
        s = self
        event = alarm_event(s.session, alarm, change, s.now, quiet=s.decision.quiet)
        told = None if notice is None else alarm_notice(s.session, alarm, notice, s.src.site, s.now)
        tell(s.session, s.env, s.told, s.src.site, event, told, s.now)


def apply(
    session: Session,
    env: IncidentEnv,
    told: Told,
    src: Source,
    alarm_type: str,
    decision: Decision,
    at: datetime,
    now: datetime,
    *,
    value: Mapping[str, Any],
    source: str = "rule",
    code: str | None = None,
    reading: bool = True,
) -> Alarm | None:
    """The decision's effect on the alarm rows and tickets. Returns the alarm it touched.
    `reading`: the decision was made on a new reading or event (False: a due time, which repeats
    nothing). A snoozed device's changes are recorded and published quietly, open no ticket and
    page nobody; once the snooze is over, the next reading of a still active alarm opens its ticket."""
    if decision.stale:
        return None
    if decision.action is None and decision.state.severity is None and not decision.flapping_ended:
        return None  # no alarm before or after: the common normal reading costs no query
    snoozed = rows.snoozed_until(session, src.device_id, now) is not None
    if snoozed:
        decision = replace(decision, quiet=True)
    step = _Step(session, env, told, src, decision, at, now, dict(value), snoozed)
    alarm: Alarm | None
    if decision.action == "raise" and decision.severity is not None:
        alarm = _raise(step, alarm_type, source, code)
    else:
        alarm = rows.active_alarm(session, src.device_id, alarm_type)
        if alarm is None:
            return None
        if decision.action in ("rise", "fall") and decision.severity is not None:
            _change(step, alarm)
        elif decision.action == "clear":
            _clear(step, alarm)
        elif decision.state.clearing is None and reading:
            rows.repeat(alarm, at, step.value)
            if alarm.ticket_id is None and not snoozed:  # raised while snoozed; the snooze is over
                _ticket(step, alarm)
        elif reading:  # below its level, waiting out the clear delay: the latest value, not a repeat
            alarm.last_value = step.value
    _flapping(step, alarm)
    return alarm


def _raise(step: _Step, alarm_type: str, source: str, code: str | None) -> Alarm:
    d, src = step.decision, step.src
    assert d.severity is not None
    alarm, created = rows.raise_alarm(
        step.session,
        site_id=src.site_id,
        device_id=src.device_id,
        alarm_type=alarm_type,
        severity=d.severity,
        source=source,
        at=step.at,
        value=step.value,
        where=src.where,
        code=code,
        flapping=d.state.flapping,
    )
    if not created:  # another transaction's alarm is active: this reading repeats it, maybe worse
        if severity_rank(d.severity) > severity_rank(alarm.severity):
            _change(replace(step, decision=replace(d, action="rise")), alarm)
        return alarm
    if not step.snoozed:
        _ticket(step, alarm)
    step.tell(alarm, "raised", None if d.quiet else "alarm_raised")
    return alarm


def _ticket(step: _Step, alarm: Alarm) -> Ticket:
    """Open the alarm's emergency ticket, or attach the alarm to the open one of its source."""
    src = step.src
    procedure = ticket_flow.procedure_of(step.env, procedure_for_alarm(alarm.alarm_type))
    ticket, created = ticket_flow.start(
        step.session,
        step.env,
        step.told,
        site_id=src.site_id,
        procedure=procedure,
        severity=alarm.severity,
        now=step.now,
        source=source_key(src.device_id, procedure.code),
        device_id=src.device_id,
        where=src.where,
        detail={"alarm_id": alarm.id, "alarm_type": alarm.alarm_type},
    )
    alarm.ticket_id = ticket.id
    if not created:
        add_event(step.session, ticket.id, step.now, "system", "alarm_attached", {"alarm_id": alarm.id})
        _raise_ticket_severity(ticket, alarm.severity)
    _muster_if_gas(step, alarm, ticket)
    return ticket


def _raise_ticket_severity(ticket: Ticket, severity: str) -> None:
    if severity_rank(severity) > severity_rank(ticket.severity):
        ticket.severity = severity


def _muster_if_gas(step: _Step, alarm: Alarm, ticket: Ticket) -> None:
    """P5 §1: a critical gas alarm (evacuate) calls every guard on duty, once per ticket."""
    if alarm.alarm_type != "gas" or alarm.severity != "critical":
        return
    called = select(TicketEvent.id).where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "muster").limit(1)
    if step.session.execute(called).first() is None:
        ticket_flow.muster(step.session, step.env, step.told, ticket, step.now)


def _change(step: _Step, alarm: Alarm) -> None:
    """Severity up (at once) or down (after the clear delay). A rise with no open ticket (it was
    closed while the alarm stayed active, or the alarm was raised during a snooze) opens one."""
    d = step.decision
    assert d.severity is not None
    rows.repeat(alarm, step.at, step.value)
    rose = d.action == "rise"
    rows.set_severity(alarm, d.severity)
    if rose and not step.snoozed:
        ticket = ticket_flow.locked(step.session, alarm.ticket_id) if alarm.ticket_id is not None else None
        if ticket is None or ticket.closed_at is not None:
            _ticket(step, alarm)
        else:
            _raise_ticket_severity(ticket, alarm.severity)
            detail = {"alarm_id": alarm.id, "severity": alarm.severity}
            add_event(step.session, ticket.id, step.now, "system", "alarm_rose", detail)
            _muster_if_gas(step, alarm, ticket)
    step.tell(alarm, "rose" if rose else "fell", "alarm_rose" if rose and not d.quiet else None)


def _clear(step: _Step, alarm: Alarm) -> None:
    alarm.last_value = step.value  # the clearing reading (or, after a clear delay, the last one) is no repeat
    rows.clear(alarm, step.at)
    if alarm.ticket_id is not None:
        label = f"{alarm.alarm_type}#{alarm.id}"
        ticket_flow.note_alarm_cleared(step.session, step.env, step.told, alarm.ticket_id, label, step.now)
    step.tell(alarm, "cleared", None if step.decision.quiet else "alarm_cleared")


def _flapping(step: _Step, alarm: Alarm | None) -> None:
    """A flapping sensor notifies once when it starts and once when it settles, not every change."""
    d = step.decision
    if alarm is None or not (d.flapping_started or d.flapping_ended):
        return
    alarm.flapping = d.flapping_started
    # not quiet unless snoozed: this is the one notice a flapping sensor gives
    once = replace(step, decision=replace(d, quiet=step.snoozed))
    notice: NoticeKind | None = "alarm_flapping" if d.flapping_started and not step.snoozed else None
    once.tell(alarm, "flapping" if d.flapping_started else "stable", notice)


def acknowledge(session: Session, env: IncidentEnv, alarm_id: int, by: str, comment: str | None, now: datetime) -> Told:
    """The control room takes the alarm: recorded with who, when and the comment; its ticket, if
    still unacknowledged, is acknowledged too, which stops the escalation."""
    told = Told()
    alarm = session.scalars(select(Alarm).where(Alarm.id == alarm_id).with_for_update()).one_or_none()
    if alarm is None:
        raise ticket_flow.NotFound(f"no alarm {alarm_id}")
    if alarm.acknowledged_at is not None:
        raise TicketRuleError(
            "already_acknowledged",
            Name(zh=f"告警已由 {alarm.acknowledged_by} 确认", en=f"Already acknowledged by {alarm.acknowledged_by}"),
            "conflict",
        )
    alarm.acknowledged_at, alarm.acknowledged_by, alarm.ack_comment = now, by, comment
    site = site_code(session, alarm.site_id)
    tell(session, env, told, site, alarm_event(session, alarm, "acknowledged", now), None, now)
    if alarm.ticket_id is not None:
        ticket = ticket_flow.locked(session, alarm.ticket_id)
        if ticket.state == "open":
            told.events += ticket_flow.acknowledge(session, env, ticket.id, by, now).events
    return told
