"""The site model as the control room sees it. Roles: all."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, aliased

from server.api.deps import EVERYONE, SessionDep
from server.api.schemas import BuildingPublic, CheckpointPublic, DevicePublic, Name, SitePublic
from storage.models import Building, Device, Floor, Location, Site, Staff, Tag

router = APIRouter(prefix="/api/v1/sites", tags=["sites"], dependencies=[EVERYONE])


def _site(session: Session, code: str) -> Site:
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {code!r}: GET /api/v1/sites lists them")
    return site


def _count(session: Session, model: Any, site_id: int, *where: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(model).where(model.site_id == site_id, *where)) or 0


@router.get("", response_model=list[SitePublic], summary="All sites. Roles: all")
def list_sites(session: SessionDep) -> list[SitePublic]:
    return [
        SitePublic(
            code=s.code,
            name=Name(zh=s.name_zh, en=s.name_en),
            timezone=s.timezone,
            buildings=_count(session, Building, s.id),
            checkpoints=_count(session, Tag, s.id, Tag.location_id.is_not(None), Tag.active.is_(True)),
            devices=_count(session, Device, s.id, Device.active.is_(True)),
        )
        for s in session.scalars(select(Site).order_by(Site.code))
    ]


@router.get("/{site}/buildings", response_model=list[BuildingPublic], summary="Buildings of a site. Roles: all")
def list_buildings(site: str, session: SessionDep) -> list[BuildingPublic]:
    sid = _site(session, site).id
    return [
        BuildingPublic(
            code=b.code, name=Name(zh=b.name_zh, en=b.name_en), floors_above=b.floors_above, floors_below=b.floors_below
        )
        for b in session.scalars(select(Building).where(Building.site_id == sid).order_by(Building.code))
    ]


@router.get(
    "/{site}/checkpoints",
    response_model=list[CheckpointPublic],
    summary="Locations with their NFC tags (a tagged location is a checkpoint). Roles: all",
)
def list_checkpoints(site: str, session: SessionDep, tagged_only: bool = True) -> list[CheckpointPublic]:
    sid = _site(session, site).id
    tag = aliased(Tag)
    stmt = (
        select(Location, Building.code, Floor.label, tag.uid)
        .outerjoin(Building, Building.id == Location.building_id)
        .outerjoin(Floor, Floor.id == Location.floor_id)
        .outerjoin(tag, (tag.location_id == Location.id) & tag.active.is_(True))
        .where(Location.site_id == sid)
        .order_by(Location.code)
    )
    if tagged_only:
        stmt = stmt.where(tag.uid.is_not(None))
    return [
        CheckpointPublic(
            code=loc.code,
            name=Name(zh=loc.name_zh, en=loc.name_en),
            type=loc.type,
            building=bcode,
            floor=flabel,
            tag_uid=uid,
            active=loc.active,
        )
        for loc, bcode, flabel, uid in session.execute(stmt)
    ]


@router.get(
    "/{site}/devices",
    response_model=list[DevicePublic],
    summary="Readers and sensors with their last reported status. Roles: all",
)
def list_devices(site: str, session: SessionDep, kind: str | None = None) -> list[DevicePublic]:
    sid = _site(session, site).id
    stmt = (
        select(Device, Location.code, Staff.code)
        .outerjoin(Location, Location.id == Device.location_id)
        .outerjoin(Staff, Staff.id == Device.holder_id)
        .where(Device.site_id == sid)
        .order_by(Device.code)
    )
    if kind:
        stmt = stmt.where(Device.kind == kind)
    return [
        DevicePublic(
            code=d.code,
            kind=d.kind,
            name=Name(zh=d.name_zh, en=d.name_en),
            location=lcode,
            holder=scode,
            active=d.active,
            online=d.online,
            battery_pct=d.battery_pct,
            rssi=d.rssi,
            firmware=d.firmware,
            status_at=d.status_at,
        )
        for d, lcode, scode in session.execute(stmt)
    ]
