"""Rejected input kept for operators. Roles: control room, supervisor, admin."""

from __future__ import annotations

import base64

from fastapi import APIRouter
from sqlalchemy import select

from server.api.deps import OPERATORS, BeforeId, Limit, SessionDep
from server.api.schemas import Page, QuarantinePublic
from storage.models import QuarantinedMessage

router = APIRouter(prefix="/api/v1/quarantine", tags=["quarantine"], dependencies=[OPERATORS])


def _text(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


@router.get(
    "",
    response_model=Page[QuarantinePublic],
    summary="Quarantined messages, newest first. Roles: control_room, supervisor, admin",
)
def list_quarantine(
    session: SessionDep,
    reason: str | None = None,
    site: str | None = None,
    device: str | None = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> Page[QuarantinePublic]:
    stmt = select(QuarantinedMessage).order_by(QuarantinedMessage.id.desc()).limit(limit)
    for value, column in (
        (reason, QuarantinedMessage.reason),
        (site, QuarantinedMessage.site_code),
        (device, QuarantinedMessage.device_code),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if before_id is not None:
        stmt = stmt.where(QuarantinedMessage.id < before_id)
    items = [
        QuarantinePublic(
            id=q.id,
            received_at=q.received_at,
            topic=q.topic,
            site=q.site_code,
            device=q.device_code,
            reason=q.reason,
            detail=q.detail,
            payload_text=_text(q.payload),
            payload_base64=base64.b64encode(q.payload).decode(),
            size=len(q.payload),
        )
        for q in session.scalars(stmt)
    ]
    return Page[QuarantinePublic].of(items, limit)
