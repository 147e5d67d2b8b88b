"""Patrol routes and plans (issue 8 items 1-2). Everyone reads them (a guard reads his route too);
supervisors and managers edit plans, validated like the site file (its route, guards and windows
must exist), and rounds are generated for an edited plan at once. The site file stays the source:
loading it again replaces the plans with its own."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.patrol_plans import PlanSpec, RouteSpec, missing_peaks, point_gaps
from server.api.deps import EVERYONE, SessionDep, require_roles
from server.api.incident_schemas import CodeFilter, PathCode
from server.api.patrol_schemas import PlanBody, PlanPublic, RoutePointPublic, RoutePublic
from server.api.routes.tickets import Now
from server.api.schemas import Name
from server.auth import Role
from storage.models import Location, Site, User
from storage.round_actions import RoundActionError, delete_plan, put_plan
from storage.rounds import checkpoint_places

router = APIRouter(prefix="/api/v1", tags=["patrol"], dependencies=[EVERYONE])
Planner = Annotated[User, Depends(require_roles(Role.SUPERVISOR, Role.MANAGER))]
SITE_404: dict[int | str, dict[str, Any]] = {404: {"description": "No such site or plan (GET /api/v1/sites)"}}


def _sites(session: Session, code: str | None) -> list[Site]:
    query = select(Site).order_by(Site.code)
    found = list(session.scalars(query.where(Site.code == code) if code else query))
    if code and not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {code!r}: GET /api/v1/sites lists them")
    return found


@router.get(
    "/routes",
    response_model=list[RoutePublic],
    responses=SITE_404,
    summary="Patrol routes with their checkpoints. Roles: all",
)
def list_routes(session: SessionDep, site: CodeFilter = None) -> list[RoutePublic]:
    out: list[RoutePublic] = []
    for s in _sites(session, site):
        places, _ = checkpoint_places(session, s.id)
        names = {
            code: Name(zh=zh, en=en)
            for code, zh, en in session.execute(
                select(Location.code, Location.name_zh, Location.name_en).where(Location.site_id == s.id)
            )
        }
        for data in s.routes or []:
            route = RouteSpec.model_validate(data)
            gaps = point_gaps(route, places)
            points = [
                RoutePointPublic(
                    checkpoint=p.checkpoint,
                    name=names.get(p.checkpoint),
                    order=p.order,
                    window=p.window.model_dump() if p.window else None,
                    min_gap_s=gaps[p.checkpoint],
                )
                for p in route.sequence()
            ]
            name = Name(**route.name.model_dump())
            out.append(RoutePublic(site=s.code, code=route.code, name=name, area=route.area, points=points))
    return out


@router.get(
    "/plans", response_model=list[PlanPublic], responses=SITE_404, summary="Patrol plans (巡查计划). Roles: all"
)
def list_plans(session: SessionDep, site: CodeFilter = None) -> list[PlanPublic]:
    return [
        PlanPublic(site=s.code, plan=plan, missing_peaks=missing_peaks(plan))
        for s in _sites(session, site)
        for plan in (PlanSpec.model_validate(p) for p in s.plans or [])
    ]


@router.put(
    "/plans/{site}/{code}",
    response_model=PlanPublic,
    responses={**SITE_404, 422: {"description": "The plan is not valid: the message says what to change"}},
    summary="Create or replace a plan; its rounds are generated at once. Roles: supervisor, manager, admin",
)
def put_plan_route(
    session: SessionDep, user: Planner, at: Now, site: PathCode, code: PathCode, body: PlanBody, response: Response
) -> PlanPublic:
    [found] = _sites(session, site)
    data = body.model_dump() | {"code": code}
    try:
        plan, created = put_plan(session, found, data, at)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'plan'}: {e['msg']}" for e in exc.errors())
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"the plan is not valid: {problems}") from None
    except RoundActionError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    session.commit()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return PlanPublic(site=found.code, plan=plan, missing_peaks=missing_peaks(plan))


@router.delete(
    "/plans/{site}/{code}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=SITE_404,
    summary="Remove a plan: no new rounds from it; rounds already generated stay. Roles: supervisor, manager, admin",
)
def delete_plan_route(session: SessionDep, user: Planner, site: PathCode, code: PathCode) -> None:
    [found] = _sites(session, site)
    try:
        delete_plan(session, found, code)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    session.commit()
