"""What people do to rounds and plans through the API: hand a round to another guard (转交), finish it
early with a reason, close a missed round's alert with a supervisor's comment, and edit a site's
plans with the same validation as the site file. Each change is told on out/round/{id} (through the
gateway: storage.incident_notes.publish_later) and, for a plan, makes generation run now.

Locks are taken in the order of the tap handler (guards' staff rows, then the round), so an action
and a tap of the same guard never deadlock and a tap never sees half an action.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.outbound import Outbound
from core.patrol_plans import PlanSpec, RouteSpec, cross_check
from core.rounds import FINAL_STATES, close_due
from storage import deadlines
from storage.incident_notes import Told
from storage.models import Location, RoundHandover, Site, Staff
from storage.models import Round as RoundRow
from storage.round_events import round_event
from storage.rounds import GENERATE, ROUND_CLOSE, LoadedRound, lock_round, round_subject, save, site_subject


class RoundActionError(ValueError):
    """An action the round's state or the site does not allow; `code` is for the API (409 or 422)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Actor:
    username: str


def _locked(session: Session, round_id: int, *more_guards: int) -> LoadedRound:
    loaded = lock_round(session, round_id, *more_guards)
    if loaded is None:
        raise LookupError(f"round {round_id} does not exist: GET /api/v1/rounds lists them")
    return loaded


def _tell(session: Session, told: Told, loaded: LoadedRound, change: str, now: datetime, by: Actor) -> None:
    site = session.scalar(select(Site.code).where(Site.id == loaded.row.site_id)) or ""
    told.events.append(Outbound(site, round_event(session, loaded, change, now, actor=by.username)))


def hand_over(
    session: Session, told: Told, round_id: int, to_guard: str, reason: str, by: Actor, now: datetime
) -> None:
    """转交: the round goes on with another guard of the site, recorded with who and why."""
    site_id = session.scalar(select(RoundRow.site_id).where(RoundRow.id == round_id))
    target = session.scalar(
        select(Staff).where(Staff.site_id == site_id, Staff.code == to_guard, Staff.active.is_(True))
    )
    if target is None:
        raise RoundActionError("unknown_guard", f"no active staff {to_guard!r} on this round's site: check the code")
    loaded = _locked(session, round_id, target.id)
    if loaded.row.state in FINAL_STATES:
        raise RoundActionError(
            "round_ended", f"round {round_id} has ended ({loaded.row.state}): it cannot be handed over"
        )
    if target.id == loaded.row.guard_id:
        raise RoundActionError("same_guard", f"{to_guard} already walks round {round_id}")
    session.add(
        RoundHandover(
            round_id=round_id,
            from_guard_id=loaded.row.guard_id,
            to_guard_id=target.id,
            reason=reason,
            by=by.username,
            at=now,
        )
    )
    loaded.row.guard_id = target.id
    loaded.value = replace(loaded.value, guard=target.code)
    session.flush()
    _tell(session, told, loaded, "handed_over", now, by)


def finish_early(session: Session, told: Told, round_id: int, reason: str, by: Actor, now: datetime) -> None:
    """A round whose plan allows it ends now with a reason; its unsigned points are missed (told by
    the deadline engine, which runs now)."""
    loaded = _locked(session, round_id)
    if not loaded.row.early_finish:
        raise RoundActionError(
            "early_finish_not_allowed", f"the plan of round {round_id} does not allow finishing early"
        )
    if loaded.row.state in FINAL_STATES:
        raise RoundActionError("round_ended", f"round {round_id} has ended already ({loaded.row.state})")
    value, _ = close_due(loaded.value, max(now, loaded.value.closes_at))  # as if the round had run out
    save(session, loaded, value, now)
    loaded.row.finish_reason = reason
    loaded.row.alert_open = any(p.result == "missed" for p in loaded.points)
    session.flush()
    deadlines.schedule(session, ROUND_CLOSE, round_subject(round_id), now, {"round_id": round_id}, now)
    _tell(session, told, loaded, "ended", now, by)


def close_alert(session: Session, told: Told, round_id: int, comment: str, by: Actor, now: datetime) -> None:
    """A missed round's alert is closed only with a supervisor's comment (P1 §2.3: rounds are followed)."""
    loaded = _locked(session, round_id)
    if not loaded.row.alert_open:
        raise RoundActionError("no_open_alert", f"round {round_id} has no open missed-checkpoint alert")
    loaded.row.alert_open = False
    loaded.row.alert_closed_at, loaded.row.alert_closed_by, loaded.row.alert_comment = now, by.username, comment
    session.flush()
    _tell(session, told, loaded, "alert_closed", now, by)


def put_plan(session: Session, site: Site, data: dict[str, Any], now: datetime) -> tuple[PlanSpec, bool]:
    """Create or replace one plan of the site (validated like the site file: its route, guards and
    windows must exist); rounds are generated for it at once. Returns the plan and whether it is new."""
    plan = PlanSpec.model_validate(data)
    routes = [RouteSpec.model_validate(r) for r in site.routes or []]
    plans = [PlanSpec.model_validate(p) for p in site.plans or [] if p.get("code") != plan.code]
    checkpoints = set(
        session.scalars(select(Location.code).where(Location.site_id == site.id, Location.active.is_(True)))
    )
    staff = set(session.scalars(select(Staff.code).where(Staff.site_id == site.id, Staff.active.is_(True))))
    problems = [str(p) for p in cross_check(routes, [plan], checkpoints, staff)]
    if problems:
        raise RoundActionError("invalid_plan", "; ".join(problems))
    new = len(plans) == len(site.plans or [])
    site.plans = [p.model_dump(mode="json", exclude_none=True) for p in [*plans, plan]]
    deadlines.schedule(session, GENERATE, site_subject(site.id), now, {"site_id": site.id}, now)
    return plan, new


def delete_plan(session: Session, site: Site, code: str) -> None:
    """No new rounds from this plan; rounds generated already stay (they may be under way)."""
    kept = [p for p in site.plans or [] if p.get("code") != code]
    if len(kept) == len(site.plans or []):
        raise LookupError(f"site {site.code} has no plan {code!r}: GET /api/v1/plans lists them")
    site.plans = kept
