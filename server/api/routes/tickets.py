"""Emergency tickets (issue 7; DOMAIN.md P5, P0 §5): the list, one ticket with its checklist and
its event log, opening one by hand, and working it (acknowledge, check a step, mark a step not
applicable, close with the incident record).

The rules are storage.ticket_flow's (and core.tickets' under it); a route finds the caller, checks
that the caller may act on this ticket, calls the flow, hands the out/ events to the gateway
(storage.incident_notes.publish_later) in the same transaction, and commits.

Who may (each summary says it too):
- read: control_room, supervisor, manager see every ticket; an engineer only tickets whose
  departments include engineering, a guard only those of security (what they may work on);
- open by hand: control_room, supervisor and guard (the guard at the scene, issue 7 item 5);
- acknowledge and close: control_room, supervisor, and an engineer on engineering tickets;
- check a step or mark it not applicable: those, and a guard on security tickets (the guard at the
  scene acts first, P5 §2.4). A manager reads but does not work tickets. Admin may do everything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import ColumnElement, String, cast, func, select
from sqlalchemy.orm import Session

from core.tickets import IncidentRecord, TicketRuleError
from server.api.deps import BeforeId, Limit, SessionDep, now, require_roles
from server.api.incident_schemas import (
    RULE_RESPONSES,
    CodeFilter,
    IncidentRecordPublic,
    PathCode,
    ProblemPublic,
    RuleErrorPublic,
    StepCheck,
    StepNotApplicable,
    StepPublic,
    TicketClose,
    TicketCreate,
    TicketDetailPublic,
    TicketEventPublic,
    TicketPublic,
    copied,
)
from server.api.schemas import Name, Page
from server.auth import Role
from storage import ticket_flow
from storage.alarms import Where
from storage.incident_notes import IncidentEnv, Told, publish_later
from storage.models import Alarm, Building, Device, Floor, Location, Site, Ticket, TicketStep, User
from storage.tickets import add_event, events_of, steps_of

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"])
R = Role
#: A role that sees and works only the tickets of one department.
SCOPED = {R.ENGINEER.value: "engineering", R.GUARD.value: "security"}
Reader = Annotated[User, Depends(require_roles(R.CONTROL_ROOM, R.SUPERVISOR, R.MANAGER, R.ENGINEER, R.GUARD))]
Opener = Annotated[User, Depends(require_roles(R.CONTROL_ROOM, R.SUPERVISOR, R.GUARD))]
Worker = Annotated[User, Depends(require_roles(R.CONTROL_ROOM, R.SUPERVISOR, R.ENGINEER))]
StepWorker = Annotated[User, Depends(require_roles(R.CONTROL_ROOM, R.SUPERVISOR, R.ENGINEER, R.GUARD))]
Now = Annotated[datetime, Depends(now)]
TicketId = Annotated[int, Path(ge=1, le=2**63 - 1)]
READ = "Roles: control_room, supervisor, manager, admin; engineer (engineering tickets), guard (security tickets)"
WORK = "Roles: control_room, supervisor, admin; engineer (engineering tickets)"
STEP = "Roles: control_room, supervisor, admin; engineer (engineering tickets), guard (security tickets)"


def incident_env(request: Request) -> IncidentEnv:
    """The procedures and webhook targets the app was started with (server/api/app.py)."""
    env: IncidentEnv = request.app.state.incidents
    return env


EnvDep = Annotated[IncidentEnv, Depends(incident_env)]


def install_errors(app: FastAPI) -> None:
    """A refused rule is 409 or 422 with its code, both languages and the problems; a missing
    ticket, step or alarm (storage.ticket_flow.NotFound) is 404."""

    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TicketRuleError)
        body = RuleErrorPublic(
            detail=exc.message.en,
            code=exc.code,
            message=exc.message,
            problems=[ProblemPublic(code=p.code, message=p.message, step=p.step) for p in exc.problems],
        )
        code = status.HTTP_409_CONFLICT if exc.kind == "conflict" else status.HTTP_422_UNPROCESSABLE_CONTENT
        return JSONResponse(body.model_dump(mode="json"), status_code=code)

    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)

    app.add_exception_handler(TicketRuleError, refused)
    app.add_exception_handler(ticket_flow.NotFound, not_found)


def _departments_include(department: str) -> ColumnElement[bool]:
    """`departments` is a JSON list on both databases: matched as its text, the code in quotes."""
    return cast(Ticket.departments, String).contains(f'"{department}"', autoescape=True)


def _visible(session: Session, ticket_id: int, user: User) -> None:
    """404 unless the ticket exists, 403 unless the caller's role may see it. Reads a column, not
    the row: the flow then locks and reads the row itself (an entity loaded here first would be
    served, unrefreshed, from the session to the flow's FOR UPDATE)."""
    departments = session.scalar(select(Ticket.departments).where(Ticket.id == ticket_id))
    if departments is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no ticket {ticket_id}: list them at GET {router.prefix}")
    department = SCOPED.get(user.role)
    if department is not None and department not in departments:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"ticket {ticket_id} is for {', '.join(departments)}: role {user.role!r} sees {department} tickets only",
        )


def _rows(session: Session, stmt_where: list[ColumnElement[bool]], limit: int | None = None) -> list[TicketPublic]:
    stmt = (
        select(Ticket, Site.code, Device.code, Location, Building.code)
        .join(Site, Site.id == Ticket.site_id)
        .outerjoin(Device, Device.id == Ticket.device_id)
        .outerjoin(Location, Location.id == Ticket.location_id)
        .outerjoin(Building, Building.id == Ticket.building_id)
        .where(*stmt_where)
        .order_by(Ticket.id.desc())
    )
    rows = session.execute(stmt if limit is None else stmt.limit(limit)).all()
    counts = {
        tid: (total, pending)
        for tid, total, pending in session.execute(
            select(TicketStep.ticket_id, func.count(), func.count().filter(TicketStep.state == "pending"))
            .where(TicketStep.ticket_id.in_([r[0].id for r in rows]))
            .group_by(TicketStep.ticket_id)
        )
    }
    return [
        TicketPublic.model_validate(
            copied(t, TicketPublic)
            | {
                "site": site,
                "title": Name(zh=t.title_zh, en=t.title_en),
                "departments": list(t.departments or []),
                "device": device,
                "location": loc.code if loc else None,
                "location_name": Name(zh=loc.name_zh, en=loc.name_en) if loc else None,
                "building": building,
                "deadlines": {k: datetime.fromisoformat(v) for k, v in (t.deadlines or {}).items()},
                "steps_total": counts.get(t.id, (0, 0))[0],
                "steps_pending": counts.get(t.id, (0, 0))[1],
            }
        )
        for t, site, device, loc, building in rows
    ]


def _detail(session: Session, ticket_id: int) -> TicketDetailPublic:
    [base] = _rows(session, [Ticket.id == ticket_id])
    ticket = session.get(Ticket, ticket_id)
    assert ticket is not None
    steps = [
        StepPublic.model_validate(
            copied(s, StepPublic) | {"text": Name(zh=s.text_zh, en=s.text_en), "by": s.done_by, "at": s.done_at}
        )
        for s in steps_of(session, ticket_id)
    ]
    events = [
        TicketEventPublic(id=e.id, at=e.at, actor=e.actor, kind=e.kind, detail=dict(e.detail or {}))
        for e in events_of(session, ticket_id)
    ]
    alarms = list(session.scalars(select(Alarm.id).where(Alarm.ticket_id == ticket_id).order_by(Alarm.id)))
    record = IncidentRecordPublic(**ticket.record) if ticket.record else None
    return TicketDetailPublic(**base.model_dump(), steps=steps, events=events, alarms=alarms, record=record)


@router.get("", response_model=Page[TicketPublic], summary=f"Tickets, newest first. {READ}")
def list_tickets(
    session: SessionDep,
    user: Reader,
    site: CodeFilter = None,
    state: Literal["open", "acknowledged", "closed"] | None = None,
    department: CodeFilter = None,
    procedure: CodeFilter = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> Page[TicketPublic]:
    where: list[ColumnElement[bool]] = []
    scoped = SCOPED.get(user.role)
    if scoped is not None:
        where.append(_departments_include(scoped))
    filters: list[tuple[object, Callable[[str], ColumnElement[bool]]]] = [
        (site, lambda v: Site.code == v),
        (state, lambda v: Ticket.state == v),
        (department, _departments_include),
        (procedure, lambda v: Ticket.procedure == v),
    ]
    where += [clause(str(value)) for value, clause in filters if value is not None]
    if before_id is not None:
        where.append(Ticket.id < before_id)
    return Page[TicketPublic].of(_rows(session, where, limit), limit)


@router.get("/{ticket_id}", response_model=TicketDetailPublic, summary=f"One ticket: steps, events, deadlines. {READ}")
def get_ticket(session: SessionDep, user: Reader, ticket_id: TicketId) -> TicketDetailPublic:
    _visible(session, ticket_id, user)
    return _detail(session, ticket_id)


@router.post(
    "",
    response_model=TicketDetailPublic,
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "No such site or location (GET /api/v1/sites lists them)"}},
    summary="Open a ticket by hand for an incident no sensor reports (medical emergency, disturbance, "
    "refusal to follow rules, emergency muster). Roles: control_room, supervisor, guard, admin",
)
def open_ticket(session: SessionDep, user: Opener, env: EnvDep, at: Now, body: TicketCreate) -> TicketDetailPublic:
    site = session.scalar(select(Site).where(Site.code == body.site))
    if site is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {body.site!r}: GET /api/v1/sites lists them")
    where = Where()
    if body.location is not None:
        found = session.execute(
            select(Location, Floor.number)
            .outerjoin(Floor, Floor.id == Location.floor_id)
            .where(Location.site_id == site.id, Location.code == body.location)
        ).one_or_none()
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"no location {body.location!r} at {body.site}: GET /api/v1/sites/{body.site}/checkpoints"
                "?tagged_only=false lists them",
            )
        loc, floor = found
        where = Where(loc.id, loc.building_id, floor)
    procedure = ticket_flow.procedure_of(env, body.procedure)
    told = Told()
    ticket, _ = ticket_flow.start(
        session,
        env,
        told,
        site_id=site.id,
        procedure=procedure,
        severity=procedure.severity,
        now=at,
        by=user.username,
        where=where,
        detail={"note": body.note} if body.note else None,
    )
    if body.note:  # the opened event keeps procedure and severity; the person's words get their own line
        add_event(session, ticket.id, at, user.username, "note", {"note": body.note})
    publish_later(session, told, at)
    session.commit()
    return _detail(session, ticket.id)


def _act(session: Session, at: datetime, ticket_id: int, told: Told) -> TicketDetailPublic:
    publish_later(session, told, at)
    session.commit()
    return _detail(session, ticket_id)


@router.post(
    "/{ticket_id}/acknowledge",
    response_model=TicketDetailPublic,
    responses=RULE_RESPONSES,
    summary=f"Take the ticket: stops its escalation; 409 if already acknowledged or closed. {WORK}",
)
def acknowledge_ticket(
    session: SessionDep, user: Worker, env: EnvDep, at: Now, ticket_id: TicketId
) -> TicketDetailPublic:
    _visible(session, ticket_id, user)
    return _act(session, at, ticket_id, ticket_flow.acknowledge(session, env, ticket_id, user.username, at))


@router.post(
    "/{ticket_id}/steps/{code}/check",
    response_model=TicketDetailPublic,
    responses=RULE_RESPONSES,
    summary="Check a step done; a safety-critical step needs confirm_safety=true (P5 §2.4.2, P5 §2.4.5(2)), "
    f"else 422. {STEP}",
)
def check_step(
    session: SessionDep, user: StepWorker, env: EnvDep, at: Now, ticket_id: TicketId, code: PathCode, body: StepCheck
) -> TicketDetailPublic:
    _visible(session, ticket_id, user)
    told = ticket_flow.check_step(
        session, env, ticket_id, code, user.username, at, confirm_safety=body.confirm_safety, note=body.note
    )
    return _act(session, at, ticket_id, told)


@router.post(
    "/{ticket_id}/steps/{code}/not-applicable",
    response_model=TicketDetailPublic,
    responses=RULE_RESPONSES,
    summary=f"Mark a step not applicable, with the reason (required: 422 without one). {STEP}",
)
def step_not_applicable(
    session: SessionDep,
    user: StepWorker,
    env: EnvDep,
    at: Now,
    ticket_id: TicketId,
    code: PathCode,
    body: StepNotApplicable,
) -> TicketDetailPublic:
    _visible(session, ticket_id, user)
    told = ticket_flow.step_not_applicable(session, env, ticket_id, code, user.username, at, body.reason)
    return _act(session, at, ticket_id, told)


@router.post(
    "/{ticket_id}/close",
    response_model=TicketDetailPublic,
    responses=RULE_RESPONSES,
    summary="Close with the incident record (P0 §5: what happened, the cause, the prevention); refused, with "
    f"every problem listed, while a step is pending or the record incomplete. {WORK}",
)
def close_ticket(
    session: SessionDep, user: Worker, env: EnvDep, at: Now, ticket_id: TicketId, body: TicketClose
) -> TicketDetailPublic:
    _visible(session, ticket_id, user)
    record = IncidentRecord(body.what_happened, body.cause, body.prevention)
    return _act(session, at, ticket_id, ticket_flow.close(session, env, ticket_id, user.username, at, record))
