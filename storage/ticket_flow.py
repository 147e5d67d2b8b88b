"""What happens to a ticket, whoever makes it happen: opened (by an alarm or by hand), escalated
by the deadline engine until acknowledged, steps checked, closed with the incident record.

Each function works in the caller's transaction, applies a rule of core.tickets /
core.escalation to the locked row, writes the ticket event, and tells (storage.incident_notes):
the change, its event and its notifications commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import tickets as rules
from core.escalation import DutyShift, EscalationPosition, LevelSpec, level_recipients, muster_recipients, next_step
from core.outbound import Name
from core.procedures import Procedure
from core.webhooks import NoticeKind
from storage import deadlines
from storage.alarms import Where, busy_as_subject_busy
from storage.duty import first_responder, roster_of
from storage.incident_notes import IncidentEnv, Told, site_code, tell, ticket_event, ticket_notice
from storage.models import Ticket, TicketStep
from storage.tickets import add_event, open_ticket, steps_of

ESCALATE = "ticket.escalate"


class NotFound(LookupError):
    """No such ticket (or step): the API answers 404."""


def _subject(ticket_id: int) -> str:
    return f"ticket:{ticket_id}"


def procedure_of(env: IncidentEnv, code: str) -> Procedure:
    try:
        return env.procedures[code]
    except KeyError:
        raise NotFound(f"no procedure {code!r}; known: {sorted(env.procedures)}") from None


def locked(session: Session, ticket_id: int, *, nowait: bool = False) -> Ticket:
    """The ticket, locked for this transaction (`nowait`: SubjectBusy rather than wait)."""
    with busy_as_subject_busy():
        ticket = session.scalars(
            select(Ticket).where(Ticket.id == ticket_id).with_for_update(nowait=nowait)
        ).one_or_none()
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    return ticket


def start(
    session: Session,
    env: IncidentEnv,
    told: Told,
    *,
    site_id: int,
    procedure: Procedure,
    severity: str,
    now: datetime,
    by: str = "system",
    source: str | None = None,
    device_id: int | None = None,
    where: Where | None = None,
    detail: dict[str, Any] | None = None,
) -> tuple[Ticket, bool]:
    """Open a ticket (or find the open one of `source`); a new one gets its first responder, its
    escalation started, and every guard on duty called for a muster (P5 §1)."""
    where = where or Where()
    roster = roster_of(session, site_id)
    responder = first_responder(session, site_id, where.building_id, where.floor, now, roster)
    ticket, created = open_ticket(
        session,
        site_id=site_id,
        procedure=procedure,
        severity=severity,
        at=now,
        opened_by=by,
        source=source,
        device_id=device_id,
        where=where,
        first_responder=responder,
    )
    if not created:
        return ticket, False
    site = site_code(session, site_id)
    lines = [Name(zh=f"首先响应：{responder}", en=f"First responder: {responder}")] if responder else []
    event = ticket_event(session, ticket, "opened", by, now, detail=detail)
    tell(session, env, told, site, event, ticket_notice(ticket, "ticket_opened", site, now, lines), now)
    if procedure.code == "emergency_muster":
        muster(session, env, told, ticket, now)
    _escalate(session, env, told, ticket, procedure, None, now, roster)
    return ticket, True


def muster(session: Session, env: IncidentEnv, told: Told, ticket: Ticket, now: datetime) -> list[str]:
    """P5 §1: every guard on duty is called to the muster."""
    roster, tz = roster_of(session, ticket.site_id)
    guards = muster_recipients(roster, now, tz)
    add_event(session, ticket.id, now, "system", "muster", {"recipients": guards})
    site = site_code(session, ticket.site_id)
    lines = [Name(zh="全体在岗护管员立即集合", en="All guards on duty: assemble now")]
    event = ticket_event(session, ticket, "muster", "system", now, recipients=guards)
    tell(session, env, told, site, event, ticket_notice(ticket, "muster", site, now, lines), now)
    return guards


def _chain(procedure: Procedure) -> list[LevelSpec]:
    return [LevelSpec(lv.level, lv.wait_min, lv.reminders, lv.reminder_every_min or 5) for lv in procedure.escalation]


def _escalate(
    session: Session,
    env: IncidentEnv,
    told: Told,
    ticket: Ticket,
    procedure: Procedure,
    position: EscalationPosition | None,
    now: datetime,
    roster_tz: tuple[list[DutyShift], str] | None = None,
) -> None:
    """Take the escalation step due now and schedule the next one (a durable deadline)."""
    roster, tz = roster_tz or roster_of(session, ticket.site_id)
    step = next_step(_chain(procedure), position, level_recipients(roster, now, tz, ticket.departments), now)
    site = site_code(session, ticket.site_id)
    if step.recipients:
        ticket.escalation_level = step.level
        change = "reminder" if step.reminder else "escalated"
        detail = {"level": step.level, "recipients": step.recipients, "skipped": step.skipped}
        add_event(session, ticket.id, now, "system", change, detail)
        event = ticket_event(session, ticket, change, "system", now, recipients=step.recipients, detail=detail)
        who = ", ".join(step.recipients)
        lines = [Name(zh=f"通知 {step.level}：{who}", en=f"Notifying {step.level}: {who}")]
        kind: NoticeKind = "ticket_reminder" if step.reminder else "ticket_escalated"
        tell(session, env, told, site, event, ticket_notice(ticket, kind, site, now, lines), now)
    elif step.exhausted and position is None:  # nobody on duty at any level: the control room must act
        add_event(session, ticket.id, now, "system", "nobody_on_duty", {"skipped": step.skipped})
        event = ticket_event(session, ticket, "nobody_on_duty", "system", now, detail={"skipped": step.skipped})
        lines = [Name(zh="无人值班：请控制室立即安排", en="Nobody on duty: the control room must act")]
        tell(session, env, told, site, event, ticket_notice(ticket, "ticket_escalated", site, now, lines), now)
        # never stuck: try the chain again from the start once its first wait is over (shifts change)
        again = now + timedelta(minutes=procedure.escalation[0].wait_min)
        deadlines.schedule(session, ESCALATE, _subject(ticket.id), again, {"restart": True}, now)
        return
    if step.due_at is not None and step.position is not None:
        p = step.position
        payload = {"level_index": p.level_index, "started_at": p.started_at.isoformat(), "sent": p.reminders_sent}
        deadlines.schedule(session, ESCALATE, _subject(ticket.id), step.due_at, payload, now)


def escalation_due(session: Session, env: IncidentEnv, ticket_id: int, payload: dict[str, Any], now: datetime) -> Told:
    """The deadline handler's work: the next level or reminder, unless someone acknowledged."""
    told = Told()
    ticket = locked(session, ticket_id, nowait=True)  # the sweeper must never wait while holding its claims
    if ticket.state != rules.TicketState.OPEN.value:
        return told  # acknowledged or closed meanwhile: the escalation is over
    procedure = procedure_of(env, ticket.procedure)
    position = None
    if not payload.get("restart"):
        # a procedure file edited to a shorter chain since: go on from its last level
        index = min(int(payload["level_index"]), len(procedure.escalation) - 1)
        position = EscalationPosition(index, datetime.fromisoformat(payload["started_at"]), int(payload.get("sent", 0)))
    _escalate(session, env, told, ticket, procedure, position, now)
    return told


def _workflow(ticket: Ticket) -> rules.Ticket:
    return rules.Ticket(
        rules.TicketState(ticket.state),
        ticket.acknowledged_by,
        ticket.acknowledged_at,
        ticket.closed_by,
        ticket.closed_at,
    )


def _step(row: TicketStep) -> rules.TicketStep:
    spec = rules.StepSpec(row.code, row.safety_critical, row.department or "", Name(zh=row.text_zh, en=row.text_en))
    return rules.TicketStep(spec, rules.StepState(row.state), row.done_by, row.done_at, row.safety_confirmed, row.note)


def _log(session: Session, env: IncidentEnv, told: Told, ticket: Ticket, change: rules.TicketChange) -> None:
    add_event(session, ticket.id, change.at, change.actor, change.kind.value, change.detail)
    site = site_code(session, ticket.site_id)
    event = ticket_event(session, ticket, change.kind.value, change.actor, change.at, detail=change.detail)
    kind = {"acknowledged": "ticket_acknowledged", "closed": "ticket_closed"}.get(change.kind.value)
    notice = ticket_notice(ticket, kind, site, change.at) if kind else None  # type: ignore[arg-type]
    tell(session, env, told, site, event, notice, change.at)


def acknowledge(session: Session, env: IncidentEnv, ticket_id: int, by: str, now: datetime) -> Told:
    """Someone takes the ticket: the escalation stops (its deadline is cancelled)."""
    told = Told()
    ticket = locked(session, ticket_id)
    acked, change = rules.acknowledge(_workflow(ticket), by, now)
    ticket.state, ticket.acknowledged_by, ticket.acknowledged_at = acked.state.value, acked.acknowledged_by, now
    deadlines.cancel(session, ESCALATE, _subject(ticket.id), now, skip_locked=True)
    _log(session, env, told, ticket, change)
    return told


def _step_row(session: Session, ticket: Ticket, code: str) -> TicketStep:
    for row in steps_of(session, ticket.id):
        if row.code == code:
            return row
    raise NotFound(f"ticket {ticket.id} has no step {code!r}")


def _store_step(row: TicketStep, step: rules.TicketStep) -> None:
    row.state, row.done_by, row.done_at = step.state.value, step.by, step.at
    row.safety_confirmed, row.note = step.safety_confirmed, step.note


def check_step(
    session: Session,
    env: IncidentEnv,
    ticket_id: int,
    code: str,
    by: str,
    now: datetime,
    *,
    confirm_safety: bool = False,
    note: str | None = None,
) -> Told:
    told = Told()
    ticket = locked(session, ticket_id)
    rules.ensure_open(_workflow(ticket))
    row = _step_row(session, ticket, code)
    step, change = rules.check_step(_step(row), by, now, confirm_safety, note)
    _store_step(row, step)
    _log(session, env, told, ticket, change)
    return told


def step_not_applicable(
    session: Session, env: IncidentEnv, ticket_id: int, code: str, by: str, now: datetime, reason: str
) -> Told:
    told = Told()
    ticket = locked(session, ticket_id)
    rules.ensure_open(_workflow(ticket))
    row = _step_row(session, ticket, code)
    step, change = rules.mark_not_applicable(_step(row), by, now, reason)
    _store_step(row, step)
    _log(session, env, told, ticket, change)
    return told


def close(
    session: Session, env: IncidentEnv, ticket_id: int, by: str, now: datetime, record: rules.IncidentRecord
) -> Told:
    """Close with the P0 §5 record; refused (core.tickets.TicketRuleError) while a step is open,
    a safety-critical step unconfirmed, or the record incomplete."""
    told = Told()
    ticket = locked(session, ticket_id)
    steps = [_step(r) for r in steps_of(session, ticket.id)]
    closed, change = rules.close(_workflow(ticket), steps, record, by, now)
    ticket.state, ticket.closed_by, ticket.closed_at = closed.state.value, closed.closed_by, now
    ticket.record = {"what_happened": record.what_happened, "cause": record.cause, "prevention": record.prevention}
    deadlines.cancel(session, ESCALATE, _subject(ticket.id), now, skip_locked=True)
    _log(session, env, told, ticket, change)
    return told


def note_alarm_cleared(
    session: Session, env: IncidentEnv, told: Told, ticket_id: int, alarm: str, now: datetime
) -> None:
    """The alarm went back to normal: noted on the ticket, which stays open (issue 7 item 5)."""
    ticket = locked(session, ticket_id)
    if ticket.state == rules.TicketState.CLOSED.value:
        return
    ticket.alarm_cleared_at = now
    _log(session, env, told, ticket, rules.note_alarm_cleared(_workflow(ticket), alarm, now))
