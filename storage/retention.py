"""Keeping the relational store bounded: raw sensor readings, finished deadlines and quarantined
input age out; sign-ins and events never do.

The embedded default keeps telemetry in SQL (DESIGN.md); without a limit a demo site's 57 sensors
would add half a million rows a day.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from core.deadlines import DeadlineState
from storage.models import DeadlineRow, InboundMessage, QuarantinedMessage
from storage.models.ingest import QuarantineBudget


def delete_bounded(session: Session, model: Any, *where: ColumnElement[bool], limit: int) -> int:
    """Delete up to `limit` rows of `model` matching `where`, oldest id first; returns how many.
    Bounded so one call never holds the write lock long; call again while it returns `limit`."""
    doomed = select(model.id).where(*where).order_by(model.id).limit(limit).scalar_subquery()
    stmt = delete(model).where(model.id.in_(doomed)).execution_options(synchronize_session=False)
    return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def prune_telemetry(session: Session, older_than: datetime, limit: int = 10_000) -> int:
    """Raw readings received before `older_than`, `limit` at a time."""
    m = InboundMessage
    return delete_bounded(session, m, m.kind == "telemetry", m.received_at < older_than, limit=limit)


def prune_finished_deadlines(session: Session, older_than: datetime, limit: int = 10_000) -> int:
    """Fired or cancelled deadlines finished before `older_than`, `limit` at a time; failed ones
    stay until an operator has looked."""
    d = DeadlineRow
    finished = d.state.in_((DeadlineState.FIRED.value, DeadlineState.CANCELLED.value))
    return delete_bounded(session, d, finished, d.due_at < older_than, d.updated_at < older_than, limit=limit)


def prune_quarantine(session: Session, older_than: datetime, limit: int = 10_000) -> int:
    """Quarantined messages last seen before `older_than` (a repeat keeps its row alive), and the
    hourly budget rows of that age, up to `limit` of each; returns how many of both."""
    q, b = QuarantinedMessage, QuarantineBudget
    removed = delete_bounded(session, q, q.last_seen < older_than, limit=limit)
    return removed + delete_bounded(session, b, b.window_start < older_than, limit=limit)
