"""Sign-ins (签到): every tap and its verdict. Roles: control room, supervisor, manager, admin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, select

from server.api.deps import CONTROL, BeforeId, Limit, SessionDep
from server.api.schemas import Name, Page, SignInPublic
from server.api.time_filters import Since, Until, resolve_bound, site_zone
from storage.models import Device, InboundMessage, Location, SignIn, Site, Staff

router = APIRouter(prefix="/api/v1/signins", tags=["signins"], dependencies=[CONTROL])


@router.get(
    "",
    response_model=Page[SignInPublic],
    summary="Sign-ins, newest first. Roles: control_room, supervisor, manager, admin",
)
def list_signins(
    session: SessionDep,
    site: str | None = None,
    guard: Annotated[str | None, Query(description="staff code")] = None,
    checkpoint: Annotated[str | None, Query(description="location code")] = None,
    device: str | None = None,
    ok: bool | None = None,
    clock_skew: Annotated[
        bool | None, Query(description="true: only sign-ins whose reader clock was off (they count at receipt time)")
    ] = None,
    since: Since = None,
    until: Until = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> Page[SignInPublic]:
    stmt = (
        select(SignIn, Site.code, Device.code, InboundMessage, Staff, Location)
        .join(Site, Site.id == SignIn.site_id)
        .join(Device, Device.id == SignIn.device_id)
        .join(InboundMessage, InboundMessage.id == SignIn.message_id)
        .outerjoin(Staff, Staff.id == SignIn.guard_id)
        .outerjoin(Location, Location.id == SignIn.location_id)
        .order_by(SignIn.id.desc())
        .limit(limit)
    )
    zone = site_zone(session, site) if since is not None or until is not None else UTC
    filters: list[tuple[object, Callable[[Any], ColumnElement[bool]]]] = [
        (site, lambda v: Site.code == v),
        (guard, lambda v: Staff.code == v),
        (checkpoint, lambda v: Location.code == v),
        (device, lambda v: Device.code == v),
        (ok, lambda v: SignIn.ok.is_(v)),
        (clock_skew, lambda v: InboundMessage.clock_skew_s.is_not(None) == v),
        (since, lambda v: SignIn.tapped_at >= resolve_bound(v, zone, end_of_day=False)),
        (until, lambda v: SignIn.tapped_at < resolve_bound(v, zone, end_of_day=True)),
        (before_id, lambda v: SignIn.id < v),
    ]
    for value, clause in filters:
        if value is not None:
            stmt = stmt.where(clause(value))
    items = [
        SignInPublic(
            id=s.id,
            site=site_code,
            device=dev_code,
            message_id=msg.msg_id,
            guard=g.code if g else None,
            guard_name=Name(zh=g.name_zh, en=g.name_en) if g else None,
            checkpoint=loc.code if loc else None,
            checkpoint_name=Name(zh=loc.name_zh, en=loc.name_en) if loc else None,
            tag_uid=s.tag_uid,
            ok=s.ok,
            reason=s.reason,
            tapped_at=s.tapped_at,
            received_at=s.received_at,
            device_ts=msg.device_ts,
            clock_skew_s=msg.clock_skew_s,
        )
        for s, site_code, dev_code, msg, g, loc in session.execute(stmt)
    ]
    return Page[SignInPublic].of(items, limit)
