"""Ticket rows: opening one with its procedure's steps (or finding the open one of the same
source), and the event log every change writes to.

Works in the caller's transaction. "One open ticket per source" is the unique partial index
`uq_tickets_open_source`; an insert that loses a race finds the winner's ticket and attaches to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from core.procedures import Procedure
from storage.alarms import Where
from storage.db import upsert_insert
from storage.models import Ticket, TicketEvent, TicketStep
from storage.models.incidents import TICKET_OPEN

SYSTEM = "system"


def source_key(device_id: int, procedure: str) -> str:
    """What makes later alarms attach to an open ticket: the same device and incident type."""
    return f"device:{device_id}:{procedure}"


def deadlines_of(procedure: Procedure, opened_at: datetime) -> dict[str, datetime]:
    """The ticket's deadlines from its procedure (defaults: P8 §4.1(2) 2 min to acknowledge,
    3 min to notify engineering, 10 min on site; P8 §4.2 15 min for public facilities)."""
    d = procedure.deadlines
    due = {
        "ack_by": opened_at + timedelta(minutes=d.ack_min),
        "notify_engineering_by": opened_at + timedelta(minutes=d.notify_engineering_min),
        "on_site_by": opened_at + timedelta(minutes=procedure.on_site_min),
    }
    if d.resolve_min is not None:
        due["resolve_by"] = opened_at + timedelta(minutes=d.resolve_min)
    return due


def open_ticket(
    session: Session,
    *,
    site_id: int,
    procedure: Procedure,
    severity: str,
    at: datetime,
    opened_by: str = SYSTEM,
    source: str | None = None,
    device_id: int | None = None,
    where: Where | None = None,
    title: tuple[str, str] | None = None,
    first_responder: str | None = None,
) -> tuple[Ticket, bool]:
    """A new ticket with the procedure's steps in order, or, for a `source` with an open ticket,
    that ticket. Returns (ticket, created)."""
    zh, en = title or (procedure.name.zh, procedure.name.en)
    where = where or Where()
    due = deadlines_of(procedure, at)
    values: dict[str, Any] = {
        "site_id": site_id,
        "procedure": procedure.code,
        "kind": procedure.kind,
        "title_zh": zh[:300],
        "title_en": en[:300],
        "severity": severity,
        "state": "open",
        "source_key": source,
        "device_id": device_id,
        "location_id": where.location_id,
        "building_id": where.building_id,
        "floor": where.floor,
        "departments": list(procedure.departments),
        "first_responder": first_responder,
        "deadlines": {k: v.isoformat() for k, v in due.items()},
        "escalation_level": None,
        "opened_at": at,
        "opened_by": opened_by,
    }
    stmt = upsert_insert(session, Ticket).values(**values)
    if source is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=[Ticket.source_key], index_where=TICKET_OPEN)
    ticket = session.scalars(stmt.returning(Ticket)).one_or_none()
    if ticket is None:
        held = open_ticket_of(session, source or "")
        if held is None:  # pragma: no cover - the conflict names a row that exists
            raise RuntimeError(f"open ticket of {source} vanished")
        return held, False
    session.execute(  # Core executemany: one statement (ORM bulk inserts split rows by which values are null)
        insert(TicketStep.__table__),  # type: ignore[arg-type]
        [
            {
                "ticket_id": ticket.id,
                "position": i,
                "code": step.code,
                "text_zh": step.text.zh,
                "text_en": step.text.en,
                "safety_critical": step.safety_critical,
                "department": step.department,
                "due_at": at + timedelta(minutes=step.deadline_min) if step.deadline_min else None,
                "state": "pending",
                "safety_confirmed": False,
            }
            for i, step in enumerate(procedure.steps, start=1)
        ],
    )
    add_event(session, ticket.id, at, opened_by, "opened", {"procedure": procedure.code, "severity": severity})
    return ticket, True


def open_ticket_of(session: Session, source: str) -> Ticket | None:
    return session.scalars(
        select(Ticket).where(Ticket.source_key == source, TICKET_OPEN).with_for_update()
    ).one_or_none()


def add_event(session: Session, ticket_id: int, at: datetime, actor: str, kind: str, detail: Mapping[str, Any]) -> None:
    session.execute(insert(TicketEvent).values(ticket_id=ticket_id, at=at, actor=actor, kind=kind, detail=dict(detail)))


def steps_of(session: Session, ticket_id: int) -> list[TicketStep]:
    return list(
        session.scalars(select(TicketStep).where(TicketStep.ticket_id == ticket_id).order_by(TicketStep.position))
    )


def events_of(session: Session, ticket_id: int) -> list[TicketEvent]:
    return list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)))
