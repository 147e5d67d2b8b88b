"""Alarms (issue 7): the list, the roll-up floor → building → site, acknowledging, and snoozes.

Reading is for control_room, supervisor, manager and engineer. Acknowledging is the operators'
(control_room, supervisor): it records who, when and the comment, and acknowledges the alarm's
ticket too (storage.alarm_flow). A snooze silences one device for a bounded time (24 h by default,
at most 7 days) with a required reason: its alarms are still recorded but open no ticket and notify
nobody. Silencing a sensor is a supervisor's decision, so only supervisor and manager snooze (not
the control room, whose job is to react to alarms); ending a snooze early makes the device heard
again, which control_room may do too. Admin may do everything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from server.api.deps import BeforeId, Limit, SessionDep, require_roles
from server.api.incident_schemas import (
    NO_NUL,
    RULE_RESPONSES,
    AlarmAcknowledge,
    AlarmPublic,
    BuildingSummary,
    CodeFilter,
    FloorSummary,
    SiteSummary,
    SnoozeCreate,
    SnoozePublic,
    copied,
)
from server.api.routes.tickets import EnvDep, Now
from server.api.schemas import Name, Page
from server.api.time_filters import Since, Until, resolve_bound, site_zone
from server.auth import Role
from storage import alarm_flow
from storage.incident_notes import publish_later
from storage.models import Alarm, AlarmSnooze, Building, Device, Floor, Location, Site, User

R = Role
READERS = Depends(require_roles(R.CONTROL_ROOM, R.SUPERVISOR, R.MANAGER, R.ENGINEER))
router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"], dependencies=[READERS])
READ = "Roles: control_room, supervisor, manager, engineer, admin"
Operator = Annotated[User, Depends(require_roles(R.CONTROL_ROOM, R.SUPERVISOR))]
Snoozer = Annotated[User, Depends(require_roles(R.SUPERVISOR, R.MANAGER))]
Unsnoozer = Annotated[User, Depends(require_roles(R.CONTROL_ROOM, R.SUPERVISOR, R.MANAGER))]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
SITE_404: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such site or device (GET /api/v1/sites lists them)"}
}


def _alarms(session: Session, where: list[ColumnElement[bool]], at: datetime, limit: int | None) -> list[AlarmPublic]:
    stmt = (
        select(Alarm, Site.code, Device, Location, Building.code, Floor.label)
        .join(Site, Site.id == Alarm.site_id)
        .join(Device, Device.id == Alarm.device_id)
        .outerjoin(Location, Location.id == Alarm.location_id)
        .outerjoin(Building, Building.id == Alarm.building_id)
        .outerjoin(Floor, and_(Floor.building_id == Alarm.building_id, Floor.number == Alarm.floor))
        .where(*where)
        .order_by(Alarm.id.desc())
    )
    rows = session.execute(stmt if limit is None else stmt.limit(limit)).all()
    snoozed = dict(
        session.execute(
            select(AlarmSnooze.device_id, func.max(AlarmSnooze.until))
            .where(AlarmSnooze.device_id.in_({r[2].id for r in rows}), AlarmSnooze.until > at)
            .group_by(AlarmSnooze.device_id)
        ).all()
    )
    return [
        AlarmPublic.model_validate(
            copied(a, AlarmPublic)
            | {
                "site": site,
                "device": d.code,
                "device_name": Name(zh=d.name_zh, en=d.name_en),
                "active": a.cleared_at is None,
                "acknowledged": a.acknowledged_at is not None,
                "comment": a.ack_comment,
                "last_value": dict(a.last_value or {}),
                "location": loc.code if loc else None,
                "location_name": Name(zh=loc.name_zh, en=loc.name_en) if loc else None,
                "building": building,
                "floor_label": floor_label,
                "snoozed_until": snoozed.get(d.id),
            }
        )
        for a, site, d, loc, building, floor_label in rows
    ]


@router.get("", response_model=Page[AlarmPublic], summary=f"Alarms, newest first. {READ}")
def list_alarms(
    session: SessionDep,
    at: Now,
    site: CodeFilter = None,
    state: Annotated[Literal["active", "cleared"] | None, Query(description="active: not cleared yet")] = None,
    acknowledged: bool | None = None,
    severity: Literal["warning", "major", "critical"] | None = None,
    type: Annotated[
        str | None, Query(min_length=1, max_length=64, pattern=NO_NUL, description="water_leak, gas, elevator, …")
    ] = None,
    device: CodeFilter = None,
    building: Annotated[str | None, Query(min_length=1, max_length=64, pattern=NO_NUL, description="its code")] = None,
    since: Since = None,
    until: Until = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> Page[AlarmPublic]:
    """`since`/`until` bound the time the alarm was raised."""
    zone = site_zone(session, site) if since is not None or until is not None else UTC
    filters: list[tuple[object, Callable[[Any], ColumnElement[bool]]]] = [
        (site, lambda v: Site.code == v),
        (state, lambda v: Alarm.cleared_at.is_(None) if v == "active" else Alarm.cleared_at.is_not(None)),
        (acknowledged, lambda v: Alarm.acknowledged_at.is_not(None) == v),
        (severity, lambda v: Alarm.severity == v),
        (type, lambda v: Alarm.alarm_type == v),
        (device, lambda v: Device.code == v),
        (building, lambda v: Building.code == v),
        (since, lambda v: Alarm.opened_at >= resolve_bound(v, zone, end_of_day=False)),
        (until, lambda v: Alarm.opened_at < resolve_bound(v, zone, end_of_day=True)),
        (before_id, lambda v: Alarm.id < v),
    ]
    where = [clause(value) for value, clause in filters if value is not None]
    return Page[AlarmPublic].of(_alarms(session, where, at, limit), limit)


def _counts(counts: list[int], name: Name) -> dict[str, Any]:
    """The three counts of a place and its bilingual label ("3栋：2 条告警…" / "Building 3: 2 active, …")."""
    active, critical, unacked = counts
    label = Name(
        zh=f"{name.zh}：{active} 条告警，{critical} 条严重，{unacked} 条未确认",
        en=f"{name.en}: {active} active, {critical} critical, {unacked} unacknowledged",
    )
    return {"active": active, "critical": critical, "unacknowledged": unacked, "label": label}


def _add(total: list[int], active: int, critical: int, unacked: int) -> None:
    total[0], total[1], total[2] = total[0] + active, total[1] + critical, total[2] + unacked


@router.get(
    "/summary",
    response_model=list[SiteSummary],
    responses=SITE_404,
    summary=f"Active alarms rolled up floor → building → site: all, critical, unacknowledged. {READ}",
)
def alarm_summary(session: SessionDep, site: CodeFilter = None) -> list[SiteSummary]:
    """Every site (or the one asked for), with the buildings and floors that have active alarms;
    alarms of devices in no building (roads, gates) count under a building of `null` code."""
    sites = list(session.scalars(select(Site).where(Site.code == site) if site else select(Site).order_by(Site.code)))
    if site and not sites:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site!r}: GET /api/v1/sites lists them")
    rows = session.execute(
        select(
            Alarm.site_id,
            Building.code,
            Building.name_zh,
            Building.name_en,
            Alarm.floor,
            Floor.label,
            func.count(),
            func.count(case((Alarm.severity == "critical", 1))),
            func.count(case((Alarm.acknowledged_at.is_(None), 1))),
        )
        .outerjoin(Building, Building.id == Alarm.building_id)
        .outerjoin(Floor, and_(Floor.building_id == Alarm.building_id, Floor.number == Alarm.floor))
        .where(Alarm.cleared_at.is_(None), Alarm.site_id.in_([s.id for s in sites]))
        .group_by(Alarm.site_id, Building.code, Building.name_zh, Building.name_en, Alarm.floor, Floor.label)
        .order_by(Building.code.is_(None), Building.code, Alarm.floor.is_(None), Alarm.floor)  # NULLs last on both
    ).all()
    out = []
    nowhere = Name(zh="未归属楼栋", en="Outside the buildings")
    for s in sites:
        buildings: dict[str | None, tuple[Name, list[int], list[FloorSummary]]] = {}
        total = [0, 0, 0]
        for site_id, code, zh, en, floor, floor_label, active, critical, unacked in rows:
            if site_id != s.id:
                continue
            name = Name(zh=zh, en=en) if code else nowhere
            _, counts, floors = buildings.setdefault(code, (name, [0, 0, 0], []))
            _add(counts, active, critical, unacked)
            _add(total, active, critical, unacked)
            where = Name(zh=f"{name.zh} {floor_label}", en=f"{name.en} {floor_label}") if floor_label else name
            floors.append(
                FloorSummary(floor=floor, floor_label=floor_label, **_counts([active, critical, unacked], where))
            )
        site_name = Name(zh=s.name_zh, en=s.name_en)
        out.append(
            SiteSummary(
                site=s.code,
                name=site_name,
                buildings=[
                    BuildingSummary(building=code, name=name, floors=floors, **_counts(counts, name))
                    for code, (name, counts, floors) in buildings.items()
                ],
                **_counts(total, site_name),
            )
        )
    return out


def _snoozes(session: Session, where: list[ColumnElement[bool]], at: datetime, limit: int) -> list[SnoozePublic]:
    stmt = (
        select(AlarmSnooze, Device, Site.code)
        .join(Device, Device.id == AlarmSnooze.device_id)
        .join(Site, Site.id == Device.site_id)
        .where(*where)
        .order_by(AlarmSnooze.id.desc())
        .limit(limit)
    )
    return [
        SnoozePublic(
            id=z.id,
            site=site,
            device=d.code,
            device_name=Name(zh=d.name_zh, en=d.name_en),
            until=z.until,
            active=z.until > at,
            reason=z.reason,
            created_by=z.created_by,
            created_at=z.created_at,
        )
        for z, d, site in session.execute(stmt)
    ]


@router.get("/snoozes", response_model=Page[SnoozePublic], summary=f"Snoozes, newest first. {READ}")
def list_snoozes(
    session: SessionDep,
    at: Now,
    site: CodeFilter = None,
    device: CodeFilter = None,
    active: Annotated[bool | None, Query(description="true: still running now")] = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> Page[SnoozePublic]:
    filters: list[tuple[object, Callable[[Any], ColumnElement[bool]]]] = [
        (site, lambda v: Site.code == v),
        (device, lambda v: Device.code == v),
        (active, lambda v: (AlarmSnooze.until > at) == v),
        (before_id, lambda v: AlarmSnooze.id < v),
    ]
    where = [clause(value) for value, clause in filters if value is not None]
    return Page[SnoozePublic].of(_snoozes(session, where, at, limit), limit)


@router.post(
    "/snoozes",
    response_model=SnoozePublic,
    status_code=status.HTTP_201_CREATED,
    responses=SITE_404,
    summary="Snooze a device's alarms (default 24 h, at most 7 days) with a reason: they are recorded but "
    "open no ticket and notify nobody. Roles: supervisor, manager, admin",
)
def create_snooze(session: SessionDep, user: Snoozer, at: Now, body: SnoozeCreate) -> SnoozePublic:
    device_id = session.scalar(
        select(Device.id)
        .join(Site, Site.id == Device.site_id)
        .where(Site.code == body.site, Device.code == body.device)
    )
    if device_id is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no device {body.device!r} at site {body.site!r}: GET /api/v1/sites/{{site}}/devices lists them",
        )
    snooze = AlarmSnooze(
        device_id=device_id,
        until=at + timedelta(minutes=body.minutes),
        reason=body.reason.strip(),
        created_by=user.username,
        created_at=at,
    )
    session.add(snooze)
    session.commit()
    [made] = _snoozes(session, [AlarmSnooze.id == snooze.id], at, 1)
    return made


@router.delete(
    "/snoozes/{snooze_id}",
    response_model=SnoozePublic,
    responses={409: {"description": "The snooze is already over"}},
    summary="End a snooze now (kept as history): the device's alarms are heard again. "
    "Roles: control_room, supervisor, manager, admin",
)
def end_snooze(session: SessionDep, _user: Unsnoozer, at: Now, snooze_id: RowId) -> SnoozePublic:
    snooze = session.scalars(select(AlarmSnooze).where(AlarmSnooze.id == snooze_id).with_for_update()).one_or_none()
    if snooze is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no snooze {snooze_id}: GET {router.prefix}/snoozes")
    if snooze.until <= at:
        raise HTTPException(status.HTTP_409_CONFLICT, f"snooze {snooze_id} already ended at {snooze.until}")
    snooze.until = at
    session.commit()
    [ended] = _snoozes(session, [AlarmSnooze.id == snooze_id], at, 1)
    return ended


@router.get("/{alarm_id}", response_model=AlarmPublic, summary=f"One alarm. {READ}")
def get_alarm(session: SessionDep, at: Now, alarm_id: RowId) -> AlarmPublic:
    found = _alarms(session, [Alarm.id == alarm_id], at, None)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alarm {alarm_id}: list them at GET {router.prefix}")
    return found[0]


@router.post(
    "/{alarm_id}/acknowledge",
    response_model=AlarmPublic,
    responses=RULE_RESPONSES,
    summary="Acknowledge an alarm with a comment (its ticket too, if nobody took it yet); 409 if already. "
    "Roles: control_room, supervisor, admin",
)
def acknowledge_alarm(
    session: SessionDep, user: Operator, env: EnvDep, at: Now, alarm_id: RowId, body: AlarmAcknowledge
) -> AlarmPublic:
    comment = body.comment.strip() if body.comment else None
    told = alarm_flow.acknowledge(session, env, alarm_id, user.username, comment or None, at)
    publish_later(session, told, at)
    session.commit()
    return _alarms(session, [Alarm.id == alarm_id], at, None)[0]
