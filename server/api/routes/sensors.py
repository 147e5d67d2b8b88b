"""A sensor's readings: its newest value (sensor_latest, whichever store keeps the history) and its
history from the SQL message log (telemetry rows, kept `PATROL_TELEMETRY_RETENTION_DAYS`).

Addressed like the site model (`/api/v1/sites/{site}/devices`): `/api/v1/sensors/{site}/{device}/readings`.
Roles: control_room, supervisor, manager, engineer, admin.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import case, select

from server.api.deps import BeforeId, Limit, SessionDep, require_roles
from server.api.incident_schemas import LatestReadingPublic, PathCode, ReadingPublic, SensorReadingsPublic
from server.api.schemas import Name
from server.api.time_filters import Since, Until, resolve_bound
from server.auth import Role
from storage.models import Device, InboundMessage, Location, SensorLatest, Site

R = Role
router = APIRouter(
    prefix="/api/v1/sensors",
    tags=["sensors"],
    dependencies=[Depends(require_roles(R.CONTROL_ROOM, R.SUPERVISOR, R.MANAGER, R.ENGINEER))],
)
#: When a reading was taken: the device's time, or the receipt time when its clock was off (core.device_clock).
TAKEN_AT = case((InboundMessage.clock_skew_s.is_(None), InboundMessage.device_ts), else_=InboundMessage.received_at)


def _values(payload: str) -> dict[str, Any]:
    """The readings of a logged telemetry message (the JSON as the device sent it, validated then)."""
    try:
        values = json.loads(payload).get("values")
    except (ValueError, AttributeError):
        return {}
    return values if isinstance(values, dict) else {}


@router.get(
    "/{site}/{device}/readings",
    response_model=SensorReadingsPublic,
    summary="A sensor's latest value and its reading history, newest first. "
    "Roles: control_room, supervisor, manager, engineer, admin",
)
def sensor_readings(
    session: SessionDep,
    site: PathCode,
    device: PathCode,
    since: Since = None,
    until: Until = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> SensorReadingsPublic:
    found = session.execute(
        select(Device, Site.timezone, Location.code)
        .join(Site, Site.id == Device.site_id)
        .outerjoin(Location, Location.id == Device.location_id)
        .where(Site.code == site, Device.code == device)
    ).one_or_none()
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no device {device!r} at site {site!r}: GET /api/v1/sites/{site}/devices"
        )
    dev, timezone, location = found
    zone = ZoneInfo(timezone) if timezone else UTC
    stmt = (
        select(
            InboundMessage.id,
            InboundMessage.msg_id,
            InboundMessage.device_ts,
            InboundMessage.clock_skew_s,
            InboundMessage.received_at,
            InboundMessage.payload,
        )
        .where(InboundMessage.device_id == dev.id, InboundMessage.kind == "telemetry")
        .order_by(InboundMessage.id.desc())
        .limit(limit)
    )
    if since is not None:
        stmt = stmt.where(resolve_bound(since, zone, end_of_day=False) <= TAKEN_AT)
    if until is not None:
        stmt = stmt.where(resolve_bound(until, zone, end_of_day=True) > TAKEN_AT)
    if before_id is not None:
        stmt = stmt.where(InboundMessage.id < before_id)
    items = [
        ReadingPublic(id=i, msg_id=m, at=r if skew is not None else ts, received_at=r, values=_values(p))
        for i, m, ts, skew, r, p in session.execute(stmt)
    ]
    latest = session.get(SensorLatest, dev.id)
    return SensorReadingsPublic(
        site=site,
        device=dev.code,
        kind=dev.kind,
        name=Name(zh=dev.name_zh, en=dev.name_en),
        location=location,
        latest=LatestReadingPublic(at=latest.observed_at, msg_id=latest.msg_id, values=dict(latest.values or {}))
        if latest
        else None,
        items=items,
        next_before_id=items[-1].id if len(items) == limit else None,
    )
