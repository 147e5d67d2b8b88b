"""What the patrol endpoints take and give (issue 8): routes, plans, rounds with their points,
hand-overs and fraud signals."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from core.patrol_plans import PlanSpec
from server.api.incident_schemas import NO_NUL
from server.api.schemas import Name

Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=NO_NUL)]


class RoutePointPublic(BaseModel):
    checkpoint: str
    name: Name | None
    order: int  # 0: any order; 1..n: the fixed sequence
    window: dict[str, int] | None  # {from_min, to_min} from the round's start
    min_gap_s: int  # least seconds since the previous sign-in (walking time)


class RoutePublic(BaseModel):
    site: str
    code: str
    name: Name
    area: str
    points: list[RoutePointPublic]


class PlanPublic(BaseModel):
    site: str
    plan: PlanSpec
    #: P0 §1 advice: the morning/evening peaks no round of the plan overlaps
    missing_peaks: list[str]


class PlanBody(BaseModel):
    """A plan as in the site file's `plans:` (docs/site-file.md); its code is the path's."""

    model_config = ConfigDict(extra="allow")


class RoundPointPublic(BaseModel):
    checkpoint: str
    name: Name | None
    order: int
    opens_at: datetime
    due_at: datetime
    closes_at: datetime
    result: str  # pending / early / on_time / late / missed
    signed_at: datetime | None
    condition: str | None
    missed_alerted_at: datetime | None


class HandoverPublic(BaseModel):
    from_guard: str
    to_guard: str
    reason: str
    by: str
    at: datetime


class SignalPublic(BaseModel):
    kind: str
    severity: str
    at: datetime
    detail: dict[str, Any]
    text: Name


class RoundPublic(BaseModel):
    id: int
    site: str
    plan: str
    route: str
    area: str
    guard: str
    guard_name: Name | None
    starts_at: datetime
    ends_at: datetime
    grace_s: int
    makeup: bool
    early_finish: bool
    state: str  # scheduled / in_progress / completed / incomplete / missed
    completion_pct: float
    lateness_s: int
    last_signed_at: datetime | None
    next_checkpoint: str | None
    finish_reason: str | None
    alert_open: bool
    alert_closed_at: datetime | None
    alert_closed_by: str | None
    alert_comment: str | None
    points: list[RoundPointPublic]


class RoundDetail(RoundPublic):
    handovers: list[HandoverPublic]
    #: things a supervisor should look at (core.fraud), never silently "fixed"
    signals: list[SignalPublic]


class HandoverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_guard: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    reason: Reason


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Reason
