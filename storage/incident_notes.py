"""Telling people about alarm and ticket changes: out/ events (published after the commit, and so
on the live feed) and webhook notices (outbox rows written in the same transaction).

`Told` collects both for one transaction. Every change of an alarm or a ticket goes through here,
whether the gateway, the deadline engine or the API made it, so no path forgets a channel.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from core.alarm_rules import ALARM_TYPE_NAMES, SEVERITY_NAMES
from core.outbound import AlarmEvent, Name, Outbound, OutEvent, OutEventType, RoundEvent, TicketEvent
from core.procedures import Procedure
from core.webhooks import Notice, NoticeKind, WebhookTarget
from storage import deadlines
from storage.db import held
from storage.models import Alarm, Building, Device, Location, Site, Ticket
from storage.outbox import enqueue

#: out/ events decided outside the gateway (the API): stored as a deadline due at once, which the
#: gateway's sweeper fires by publishing them, so they go out after the commit, never before it and
#: never lost to a crash in between.
OUT_PUBLISH = "out.publish"
_EVENT: TypeAdapter[OutEventType] = TypeAdapter(OutEvent)


@dataclass(frozen=True)
class IncidentEnv:
    """What the incident flows need besides the database: the company's procedures and where
    notices go. Built once per process (app.wiring)."""

    procedures: Mapping[str, Procedure]
    webhooks: Sequence[WebhookTarget] = ()


@dataclass
class Told:
    """The out/ events one transaction decided; publish them after it commits."""

    events: list[Outbound] = field(default_factory=list)


def _name(zh: str, en: str) -> Name:
    return Name(zh=zh, en=en)


def location_name(session: Session, location_id: int | None) -> Name | None:
    loc = held(session, Location, location_id)
    return _name(loc.name_zh, loc.name_en) if loc is not None else None


def _building_code(session: Session, building_id: int | None) -> str | None:
    b = held(session, Building, building_id)
    return b.code if b is not None else None


def site_code(session: Session, site_id: int) -> str:
    site = held(session, Site, site_id)
    if site is None:  # pragma: no cover - rows reference an existing site
        raise LookupError(f"site {site_id} is gone")
    return site.code


def alarm_event(session: Session, alarm: Alarm, change: str, at: datetime, *, quiet: bool = False) -> AlarmEvent:
    device = held(session, Device, alarm.device_id)
    return AlarmEvent(
        change=change,
        id=alarm.id,
        device=device.code if device else str(alarm.device_id),
        alarm_type=alarm.alarm_type,
        severity=alarm.severity,
        peak_severity=alarm.peak_severity,
        active=alarm.cleared_at is None,
        acknowledged=alarm.acknowledged_at is not None,
        count=alarm.count,
        last_value=dict(alarm.last_value or {}),
        opened_at=alarm.opened_at,
        last_seen=alarm.last_seen,
        cleared_at=alarm.cleared_at,
        acknowledged_by=alarm.acknowledged_by,
        comment=alarm.ack_comment,
        flapping=alarm.flapping,
        quiet=quiet,
        ticket_id=alarm.ticket_id,
        location=location_name(session, alarm.location_id),
        building=_building_code(session, alarm.building_id),
        floor=alarm.floor,
        device_name=_name(device.name_zh, device.name_en) if device else None,
        at=at,
    )


def ticket_event(
    session: Session,
    ticket: Ticket,
    change: str,
    actor: str,
    at: datetime,
    *,
    recipients: Sequence[str] = (),
    detail: Mapping[str, Any] | None = None,
) -> TicketEvent:
    device = held(session, Device, ticket.device_id)
    return TicketEvent(
        change=change,
        id=ticket.id,
        procedure=ticket.procedure,
        title=_name(ticket.title_zh, ticket.title_en),
        severity=ticket.severity,
        state=ticket.state,
        departments=list(ticket.departments or []),
        first_responder=ticket.first_responder,
        escalation_level=ticket.escalation_level,
        recipients=list(recipients),
        deadlines={k: datetime.fromisoformat(v) for k, v in (ticket.deadlines or {}).items()},
        device=device.code if device else None,
        location=location_name(session, ticket.location_id),
        actor=actor,
        at=at,
        detail=dict(detail or {}),
    )


def tell(
    session: Session,
    env: IncidentEnv,
    told: Told,
    site: str,
    event: AlarmEvent | TicketEvent | RoundEvent,
    notice: Notice | None,
    now: datetime,
) -> None:
    """The event for out/ and the live feed; the notice (if any) for every webhook that wants it."""
    told.events.append(Outbound(site, event))
    if notice is not None and env.webhooks:
        enqueue(session, env.webhooks, notice, now)


def alarm_notice(session: Session, alarm: Alarm, kind: NoticeKind, site: str, at: datetime) -> Notice:
    type_name = ALARM_TYPE_NAMES.get(alarm.alarm_type, _name(alarm.alarm_type, alarm.alarm_type))
    severity = SEVERITY_NAMES.get(alarm.severity, _name(alarm.severity, alarm.severity))
    where = location_name(session, alarm.location_id) or _name("未知位置", "unknown place")
    verb = {
        "alarm_raised": ("告警", "alarm"),
        "alarm_rose": ("告警升级", "alarm worse"),
        "alarm_cleared": ("告警解除", "alarm cleared"),
        "alarm_flapping": ("告警频繁跳变", "alarm flapping"),
    }.get(kind, ("告警", "alarm"))
    title = _name(
        f"{where.zh} {type_name.zh}{verb[0]}（{severity.zh}）", f"{where.en}: {type_name.en} {verb[1]} ({severity.en})"
    )
    value = ", ".join(f"{k}={v}" for k, v in sorted((alarm.last_value or {}).items()))
    lines = (_name(f"读数：{value}", f"Reading: {value}"),) if value else ()
    return Notice(
        kind=kind,
        site=site,
        title=title,
        at=at,
        lines=lines,
        severity=alarm.severity,  # type: ignore[arg-type]
        ticket_id=alarm.ticket_id,
        alarm_id=alarm.id,
    )


def ticket_notice(ticket: Ticket, kind: NoticeKind, site: str, at: datetime, lines: Sequence[Name] = ()) -> Notice:
    return Notice(
        kind=kind,
        site=site,
        title=_name(f"工单 #{ticket.id} {ticket.title_zh}", f"Ticket #{ticket.id} {ticket.title_en}"),
        at=at,
        lines=tuple(lines),
        severity=ticket.severity,  # type: ignore[arg-type]
        ticket_id=ticket.id,
    )


def publish_later(session: Session, told: Told, now: datetime) -> None:
    """Hand a transaction's events to the gateway (OUT_PUBLISH); used by the API."""
    if not told.events:
        return
    payload = {"events": [{"site": o.site, "event": o.event.model_dump(mode="json")} for o in told.events]}
    deadlines.schedule(session, OUT_PUBLISH, f"api:{uuid.uuid4().hex}", now, payload, now)


def stored_events(payload: Mapping[str, Any]) -> list[Outbound]:
    return [Outbound(str(e["site"]), _EVENT.validate_python(e["event"])) for e in payload.get("events", [])]
