"""Rejected input kept for operators. Roles: control room, supervisor, admin.

The list returns bounded rows without payloads (a page of them once took the API to 1.5 GB); one
message's kept payload prefix is on its own endpoint; the summary gives the rejection totals from
the database, so they are there wherever the gateway runs (docs/metrics.md).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from sqlalchemy import RowMapping, func, select

from core.config import Settings
from server.api.deps import OPERATORS, BeforeId, Limit, SessionDep, now
from server.api.schemas import (
    Page,
    QuarantineItemPublic,
    QuarantinePublic,
    QuarantineSummaryPublic,
    RejectionCount,
    SourceRejections,
)
from storage.models import QuarantinedMessage
from storage.models.ingest import QuarantineBudget
from storage.quarantine import KEEP_BYTES

router = APIRouter(prefix="/api/v1/quarantine", tags=["quarantine"], dependencies=[OPERATORS])
ROLES = "Roles: control_room, supervisor, admin"
FLAG_FOR = timedelta(hours=1)  # a source over budget this recently is flagged
KEEP_LIMIT = KEEP_BYTES  # rows kept before revision 0004 hold whole payloads: never return more than this
Q = QuarantinedMessage
#: every column but the payload: a list never reads the kept bytes
ROW_COLUMNS = (
    Q.id,
    Q.received_at,
    Q.last_seen,
    Q.count,
    Q.topic,
    Q.site_code,
    Q.device_code,
    Q.reason,
    func.substr(Q.detail, 1, 300).label("detail"),
    Q.size,
    Q.sha256,
)


@router.get("", response_model=Page[QuarantinePublic], summary=f"Quarantined messages, newest first. {ROLES}")
def list_quarantine(
    session: SessionDep,
    reason: str | None = None,
    site: str | None = None,
    device: str | None = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> Page[QuarantinePublic]:
    """Without payloads and with the detail cut to 300 characters: a row is at most ~2 KB."""
    stmt = select(*ROW_COLUMNS).order_by(Q.id.desc()).limit(limit)
    for value, column in ((reason, Q.reason), (site, Q.site_code), (device, Q.device_code)):
        if value is not None:
            stmt = stmt.where(column == value)
    if before_id is not None:
        stmt = stmt.where(Q.id < before_id)
    items = [_row(r) for r in session.execute(stmt).mappings()]
    return Page[QuarantinePublic].of(items, limit)


@router.get(
    "/summary",
    response_model=QuarantineSummaryPublic,
    summary=f"Rejection totals from the database: by reason and by source, over-budget counts. {ROLES}",
)
def quarantine_summary(
    session: SessionDep,
    request: Request,
    at: Annotated[datetime, Depends(now)],
    limit: Annotated[int, Query(ge=1, le=1000, description="sources listed, most messages first")] = 50,
) -> QuarantineSummaryPublic:
    by_reason = [
        RejectionCount(reason=r, rows=n, messages=int(m or 0))
        for r, n, m in session.execute(
            select(Q.reason, func.count(), func.sum(Q.count)).group_by(Q.reason).order_by(Q.reason)
        )
    ]
    sources: dict[str, SourceRejections] = {}
    for src, site, device, n, m in session.execute(
        select(Q.source, func.min(Q.site_code), func.min(Q.device_code), func.count(), func.sum(Q.count)).group_by(
            Q.source
        )
    ):
        name = src or "other"  # rows kept before budgets existed have no source
        s = sources.setdefault(name, _source(name, site, device))
        s.rows, s.messages = s.rows + n, s.messages + int(m or 0)
    b = QuarantineBudget
    for name, site, device, over, last in session.execute(
        select(b.bucket, func.min(b.site_code), func.min(b.device_code), func.sum(b.over), func.max(b.last_over_at))
        .group_by(b.bucket)
        .having(func.sum(b.over) > 0)
    ):
        s = sources.setdefault(name, _source(name, site, device))
        s.over_budget, s.last_over_at = int(over), last
        s.messages += int(over)
        s.flagged = last is not None and last >= at - FLAG_FOR
    ranked = sorted(sources.values(), key=lambda s: (-s.messages, s.source))
    settings: Settings = request.app.state.settings
    return QuarantineSummaryPublic(
        rows=sum(r.rows for r in by_reason),
        messages=sum(r.messages for r in by_reason) + sum(s.over_budget for s in ranked),
        over_budget=sum(s.over_budget for s in ranked),
        budget_per_hour=settings.quarantine_budget_per_hour,
        by_reason=by_reason,
        by_source=ranked[:limit],
    )


@router.get(
    "/{item_id}",
    response_model=QuarantineItemPublic,
    summary=f"One quarantined message with its kept payload prefix, its size and SHA-256. {ROLES}",
)
def get_quarantined(session: SessionDep, item_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> QuarantineItemPublic:
    stmt = select(*ROW_COLUMNS, Q.detail.label("full_detail")).where(Q.id == item_id)
    row = session.execute(stmt).mappings().one_or_none()
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no quarantined message {item_id}: list them at GET {router.prefix}"
        )
    kept = session.scalar(select(func.substr(Q.payload, 1, KEEP_LIMIT)).where(Q.id == item_id)) or b""
    base = _row(row).model_dump() | {"detail": row["full_detail"]}
    truncated = len(kept) < row["size"]
    return QuarantineItemPublic(
        **base,
        kept_bytes=len(kept),
        truncated=truncated,
        payload_text=_text(kept, truncated),
        payload_base64=base64.b64encode(kept).decode(),
    )


def _row(r: RowMapping) -> QuarantinePublic:
    return QuarantinePublic(
        id=r["id"],
        received_at=r["received_at"],
        last_seen=r["last_seen"],
        count=r["count"],
        topic=r["topic"],
        site=r["site_code"],
        device=r["device_code"],
        reason=r["reason"],
        detail=r["detail"],
        size=r["size"],
        sha256=r["sha256"],
    )


def _source(name: str, site: str | None, device: str | None) -> SourceRejections:
    return SourceRejections(
        source=name, site=site, device=device, rows=0, messages=0, over_budget=0, flagged=False, last_over_at=None
    )


def _text(kept: bytes, truncated: bool) -> str | None:
    """The kept bytes as text when they are UTF-8; a prefix cut inside a character is shown up to
    the last whole one (base64 has every byte)."""
    for cut in range(4 if truncated else 1):
        try:
            return kept[: len(kept) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None
