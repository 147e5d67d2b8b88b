"""Keeping the relational store bounded: raw sensor readings age out, sign-ins and events never do.

The embedded default keeps telemetry in SQL (DESIGN.md); without a limit a demo site's 57 sensors
would add half a million rows a day.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.models import InboundMessage


def prune_telemetry(session: Session, older_than: datetime, limit: int = 10_000) -> int:
    """Delete up to `limit` telemetry messages received before `older_than`; returns how many.
    Bounded so one call never holds the write lock long; call again while it returns `limit`."""
    doomed = (
        select(InboundMessage.id)
        .where(InboundMessage.kind == "telemetry", InboundMessage.received_at < older_than)
        .order_by(InboundMessage.id)
        .limit(limit)
        .scalar_subquery()
    )
    result = session.execute(delete(InboundMessage).where(InboundMessage.id.in_(doomed)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
