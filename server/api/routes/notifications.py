"""Webhook notifications as operators see them: what waits in the outbox, what was given up on and
why. Roles: control room, supervisor, admin. A receiver that is down shows here (and in
`patrol_webhook_pending`), never as a stalled gateway (docs/incidents.md, Notifications)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from server.api.deps import OPERATORS, SessionDep, now
from storage.outbox import failed_rows, outbox_summary

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"], dependencies=[OPERATORS])
ROLES = "Roles: control_room, supervisor, admin"


class TargetCounts(BaseModel):
    pending: int
    failed: int


class OutboxSummaryPublic(BaseModel):
    pending: int
    failed: int
    oldest_pending_age_s: float | None
    targets: dict[str, TargetCounts]


class FailedNoticePublic(BaseModel):
    id: int
    target: str
    site: str
    ticket_id: int | None
    kind: str | None
    title: dict[str, str] | None
    attempts: int
    created_at: datetime
    last_error: str | None


@router.get(
    "/summary", response_model=OutboxSummaryPublic, summary=f"Notices waiting and given up on, per target. {ROLES}"
)
def summary(session: SessionDep, at: Annotated[datetime, Depends(now)]) -> dict[str, Any]:
    return outbox_summary(session, at)


@router.get(
    "/failed",
    response_model=list[FailedNoticePublic],
    summary=f"Notices given up on after their last attempt, newest first, with the last error. {ROLES}",
)
def failed(
    session: SessionDep,
    target: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[FailedNoticePublic]:
    return [
        FailedNoticePublic(
            id=e.id,
            target=e.target,
            site=e.site_code,
            ticket_id=e.ticket_id,
            kind=e.notice.get("kind"),
            title=e.notice.get("title"),
            attempts=e.attempts,
            created_at=e.created_at,
            last_error=e.last_error,
        )
        for e in failed_rows(session, target, limit)
    ]
