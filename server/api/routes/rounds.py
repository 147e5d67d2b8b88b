"""Patrol rounds (巡查任务, issue 8 items 3-8): the list and one round with its points (巡查明细),
hand-overs and fraud signals; handing a round to another guard (control room, supervisor), finishing
it early with a reason (its guard or a supervisor, when the plan allows), and closing a missed
round's alert with a supervisor's comment. Changes go out on out/round/{id} and the live feed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, status
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from core.fraud import TapRecord, signals_for_round
from core.rounds import next_point
from server.api.deps import BeforeId, Limit, SessionDep, require_roles
from server.api.incident_schemas import CodeFilter
from server.api.patrol_schemas import (
    CommentBody,
    HandoverBody,
    HandoverPublic,
    ReasonBody,
    RoundDetail,
    RoundPointPublic,
    RoundPublic,
    SignalPublic,
)
from server.api.routes.tickets import Now
from server.api.schemas import Name, Page
from server.api.time_filters import Since, Until, resolve_bound, site_zone
from server.auth import Role
from storage.incident_notes import Told, publish_later
from storage.models import Device, Location, RoundHandover, RoundPoint, SignIn, Site, Staff, User
from storage.models import Round as RoundRow
from storage.round_actions import Actor, RoundActionError, close_alert, finish_early, hand_over
from storage.rounds import as_value, checkpoint_places

R = Role
READERS = Depends(require_roles(R.GUARD, R.CONTROL_ROOM, R.SUPERVISOR, R.MANAGER))
router = APIRouter(prefix="/api/v1/rounds", tags=["patrol"], dependencies=[READERS])
Dispatcher = Annotated[User, Depends(require_roles(R.CONTROL_ROOM, R.SUPERVISOR))]
Finisher = Annotated[User, Depends(require_roles(R.GUARD, R.SUPERVISOR))]
Supervisor = Annotated[User, Depends(require_roles(R.SUPERVISOR, R.MANAGER))]
RoundId = Annotated[int, Path(ge=1, le=2**63 - 1)]
READ = "Roles: guard, control_room, supervisor, manager, admin"
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such round (GET /api/v1/rounds)"}}
REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such round, or no such guard to hand it to"},
    409: {"description": "The round's state does not allow it; the message says why"},
}


def _rounds(session: Session, where: list[ColumnElement[bool]], limit: int | None, at: datetime) -> list[RoundPublic]:
    stmt = (
        select(RoundRow, Site.code, Staff)
        .join(Site, Site.id == RoundRow.site_id)
        .join(Staff, Staff.id == RoundRow.guard_id)
        .where(*where)
        .order_by(RoundRow.id.desc())
    )
    rows = session.execute(stmt if limit is None else stmt.limit(limit)).all()
    points: dict[int, list[tuple[RoundPoint, Name | None]]] = {r.id: [] for r, _, _ in rows}
    found = session.execute(
        select(RoundPoint, Location.name_zh, Location.name_en)
        .outerjoin(Location, Location.id == RoundPoint.location_id)
        .where(RoundPoint.round_id.in_(list(points)))
        .order_by(RoundPoint.seq)
    )
    for p, zh, en in found:
        points[p.round_id].append((p, Name(zh=zh, en=en) if zh else None))
    return [_public(r, site, guard, points[r.id], at) for r, site, guard in rows]


def _public(
    r: RoundRow, site: str, guard: Staff, points: list[tuple[RoundPoint, Name | None]], at: datetime
) -> RoundPublic:
    value = as_value(r, [p for p, _ in points], guard.code)
    return RoundPublic(
        **{k: getattr(r, k) for k in RoundPublic.model_fields if hasattr(r, k) and k not in ("guard", "points")},
        site=site,
        guard=guard.code,
        guard_name=Name(zh=guard.name_zh, en=guard.name_en),
        next_checkpoint=next_point(value, at) if r.state in ("scheduled", "in_progress") else None,
        points=[
            RoundPointPublic(**{k: getattr(p, k) for k in RoundPointPublic.model_fields if hasattr(p, k)}, name=name)
            for p, name in points
        ],
    )


@router.get(
    "",
    response_model=Page[RoundPublic],
    summary="Rounds, newest first. Roles: guard, control_room, supervisor, manager, admin",
)
def list_rounds(
    session: SessionDep,
    at: Now,
    site: CodeFilter = None,
    guard: CodeFilter = None,
    plan: CodeFilter = None,
    state: Literal["scheduled", "in_progress", "completed", "incomplete", "missed"] | None = None,
    alert_open: bool | None = None,
    since: Since = None,
    until: Until = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> Page[RoundPublic]:
    """`since`/`until` bound the round's start."""
    zone = site_zone(session, site) if since is not None or until is not None else UTC
    filters: list[tuple[object, Callable[[Any], ColumnElement[bool]]]] = [
        (site, lambda v: Site.code == v),
        (guard, lambda v: Staff.code == v),
        (plan, lambda v: RoundRow.plan == v),
        (state, lambda v: RoundRow.state == v),
        (alert_open, lambda v: RoundRow.alert_open.is_(v)),
        (since, lambda v: RoundRow.starts_at >= resolve_bound(v, zone, end_of_day=False)),
        (until, lambda v: RoundRow.starts_at < resolve_bound(v, zone, end_of_day=True)),
        (before_id, lambda v: RoundRow.id < v),
    ]
    where = [clause(value) for value, clause in filters if value is not None]
    return Page[RoundPublic].of(_rounds(session, where, limit, at), limit)


@router.get(
    "/{round_id}",
    response_model=RoundDetail,
    responses=NOT_FOUND,
    summary="One round with its points, hand-overs and fraud signals. Roles: guard, control_room, supervisor, "
    "manager, admin",
)
def get_round(session: SessionDep, at: Now, round_id: RoundId) -> RoundDetail:
    found = _rounds(session, [RoundRow.id == round_id], None, at)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no round {round_id}: GET {router.prefix} lists them")
    rnd = found[0]
    return RoundDetail(**rnd.model_dump(), handovers=_handovers(session, round_id), signals=_signals(session, rnd))


def _handovers(session: Session, round_id: int) -> list[HandoverPublic]:
    rows = list(
        session.scalars(select(RoundHandover).where(RoundHandover.round_id == round_id).order_by(RoundHandover.id))
    )
    ids = {h.from_guard_id for h in rows} | {h.to_guard_id for h in rows}
    codes = dict(session.execute(select(Staff.id, Staff.code).where(Staff.id.in_(ids))).all()) if ids else {}
    return [
        HandoverPublic(
            from_guard=codes.get(h.from_guard_id, ""),
            to_guard=codes.get(h.to_guard_id, ""),
            reason=h.reason,
            by=h.by,
            at=h.at,
        )
        for h in rows
    ]


def _signals(session: Session, rnd: RoundPublic) -> list[SignalPublic]:
    """Fraud signals of the round: its taps and every tap of the site in the round's span, so bursts
    and one tag read at two places show (core.fraud)."""
    site_id = session.scalar(select(Site.id).where(Site.code == rnd.site))
    if site_id is None:
        return []
    places, _ = checkpoint_places(session, site_id)
    span = (
        SignIn.site_id == site_id,
        SignIn.tapped_at >= rnd.starts_at - timedelta(minutes=10),
        SignIn.tapped_at < rnd.ends_at + timedelta(seconds=rnd.grace_s),
    )
    rows = session.execute(
        select(SignIn, Staff.code, Device.code, Location.code)
        .outerjoin(Staff, Staff.id == SignIn.guard_id)
        .join(Device, Device.id == SignIn.device_id)
        .outerjoin(Location, Location.id == SignIn.location_id)
        .where(*span)
        .limit(5000)
    )
    taps = [
        TapRecord(
            guard or "",
            reader,
            loc or s.tag_uid,
            places.get(loc or ""),
            s.tapped_at,
            s.received_at,
            None,
            s.round_id,
            s.ok,
            s.reason,
        )
        for s, guard, reader, loc in rows
    ]
    return [
        SignalPublic(
            kind=x.kind, severity=x.severity, at=x.at, detail=dict(x.detail), text=Name(zh=x.text.zh, en=x.text.en)
        )
        for x in signals_for_round(rnd.id, taps)
    ]


def _act(session: Session, at: datetime, round_id: int, action: Callable[[Told], None]) -> RoundDetail:
    told = Told()
    try:
        action(told)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except RoundActionError as exc:
        code = status.HTTP_404_NOT_FOUND if exc.code == "unknown_guard" else status.HTTP_409_CONFLICT
        raise HTTPException(code, str(exc)) from None
    publish_later(session, told, at)
    session.commit()
    return get_round(session, at, round_id)


@router.post(
    "/{round_id}/handover",
    response_model=RoundDetail,
    responses=REFUSED,
    summary="Hand a round to another guard (转交) with a reason. Roles: control_room, supervisor, admin",
)
def handover_round(
    session: SessionDep, user: Dispatcher, at: Now, round_id: RoundId, body: HandoverBody
) -> RoundDetail:
    by = Actor(user.username)
    return _act(
        session,
        at,
        round_id,
        lambda told: hand_over(session, told, round_id, body.to_guard, body.reason.strip(), by, at),
    )


@router.post(
    "/{round_id}/finish",
    response_model=RoundDetail,
    responses=REFUSED,
    summary="Finish a round early with a reason, if its plan allows: unsigned points are missed. "
    "Roles: guard, supervisor, admin",
)
def finish_round(session: SessionDep, user: Finisher, at: Now, round_id: RoundId, body: ReasonBody) -> RoundDetail:
    by = Actor(user.username)
    return _act(session, at, round_id, lambda told: finish_early(session, told, round_id, body.reason.strip(), by, at))


@router.post(
    "/{round_id}/alert/close",
    response_model=RoundDetail,
    responses=REFUSED,
    summary="Close a missed round's alert with a comment. Roles: supervisor, manager, admin",
)
def close_round_alert(
    session: SessionDep, user: Supervisor, at: Now, round_id: RoundId, body: CommentBody
) -> RoundDetail:
    by = Actor(user.username)
    return _act(session, at, round_id, lambda told: close_alert(session, told, round_id, body.comment.strip(), by, at))
