"""Rounds in the database: generated from the site's plans, read as core.rounds values, written back.

Generation is idempotent by the unique (site, plan, planned guard, start): any number of gateways
may generate the same day, each round exists once. A round row and its points are read into a
frozen `core.rounds.Round`, judged by the pure rules, and only what changed is written back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select
from sqlalchemy import insert as insert_into
from sqlalchemy.orm import Session

from core.escalation import duty_check
from core.patrol_plans import Place, PlanSpec, RoundPointSpec, RoundSpec, RouteSpec, rounds_due
from core.rounds import FINAL_STATES, Point, Round, completion_pct, lateness_s
from storage import deadlines
from storage.db import held, upsert_insert
from storage.duty import roster_of
from storage.message_log import lock_rows
from storage.models import Building, Floor, Location, RoundPoint, Site, Staff
from storage.models import Round as RoundRow

log = logging.getLogger(__name__)

ROUND_CLOSE = "round.close"  # a point's window shuts or the round ends: decide what was missed
GENERATE = "patrol.generate"  # generate the rounds of the lead time ahead, then again an hour later
GENERATE_EVERY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SitePlans:
    """A site's validated routes and plans, as stored on its row."""

    routes: dict[str, RouteSpec]
    plans: list[PlanSpec]

    @classmethod
    def of(cls, site: Site) -> SitePlans:
        routes = [RouteSpec.model_validate(r) for r in site.routes or []]
        return cls({r.code: r for r in routes}, [PlanSpec.model_validate(p) for p in site.plans or []])


def round_subject(round_id: int) -> str:
    return f"round:{round_id}"


def site_subject(site_id: int) -> str:
    return f"site:{site_id}"


# --- generation ------------------------------------------------------------------------------------


def generate(session: Session, site_id: int, now: datetime, lead: timedelta) -> list[int]:
    """Insert the rounds the site's plans call for that are still open at `now` and start before
    `now + lead`, for guards on duty at their start; returns the new rounds' ids (each gets its
    `round.close` deadline). Rounds that exist already are left as they are."""
    site = held(session, Site, site_id)
    if site is None or not site.plans:
        return []
    spec = SitePlans.of(site)
    shifts, tz = roster_of(session, site_id)
    duty = duty_check(shifts, tz)
    staff = _staff(session, site_id)  # {code: (id, position)} of the active staff
    places, locations = checkpoint_places(session, site_id)
    zone = ZoneInfo(tz)
    first, last = (now - timedelta(days=1)).astimezone(zone).date(), (now + lead).astimezone(zone).date()
    guards = [code for code, (_, position) in staff.items() if position == "guard"]  # of `shift: true` plans
    wanted: list[RoundSpec] = []
    for plan in spec.plans:
        route = spec.routes.get(plan.route)
        if route is None:
            continue  # refused by the site file's checks; an older row is not worth a crash
        for day in _days(first, last):
            for r in rounds_due(plan, route, places, day, zone, duty, shift_guards=guards):
                if r.ends_at + r.grace > now and r.starts_at < now + lead and r.guard in staff:
                    wanted.append(r)
    new = [
        _insert_round(session, site_id, r, spec.routes[r.route].area, staff[r.guard][0], locations, now) for r in wanted
    ]
    created = [i for i in new if i is not None]
    if created:
        log.info("site %s: %d patrol round(s) generated", site.code, len(created))
    return created


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _staff(session: Session, site_id: int) -> dict[str, tuple[int, str]]:
    active = (Staff.site_id == site_id, Staff.active.is_(True))
    return {
        code: (i, position)
        for code, i, position in session.execute(select(Staff.code, Staff.id, Staff.position).where(*active))
    }


def checkpoint_places(session: Session, site_id: int) -> tuple[dict[str, Place], dict[str, int]]:
    rows = session.execute(
        select(Location.code, Location.id, Building.code, Floor.number)
        .outerjoin(Building, Building.id == Location.building_id)
        .outerjoin(Floor, Floor.id == Location.floor_id)
        .where(Location.site_id == site_id)
    )
    places: dict[str, Place] = {}
    ids: dict[str, int] = {}
    for code, loc_id, building, floor in rows:
        places[code], ids[code] = Place(building, floor), loc_id
    return places, ids


def _insert_round(
    session: Session, site_id: int, spec: RoundSpec, area: str, guard_id: int, locations: dict[str, int], now: datetime
) -> int | None:
    values = {
        "site_id": site_id,
        "plan": spec.plan,
        "route": spec.route,
        "area": area,
        "planned_guard_id": guard_id,
        "guard_id": guard_id,
        "starts_at": spec.starts_at,
        "ends_at": spec.ends_at,
        "grace_s": int(spec.grace.total_seconds()),
        "makeup": spec.makeup,
        "early_finish": spec.early_finish,
        "state": "scheduled",
        "completion_pct": 0.0,
        "lateness_s": 0,
        "created_at": now,
        "alert_open": False,
    }
    stmt = (
        upsert_insert(session, RoundRow)
        .values(values)
        .on_conflict_do_nothing(index_elements=["site_id", "plan", "planned_guard_id", "starts_at"])
        .returning(RoundRow.id)
    )
    round_id = session.execute(stmt).scalar()
    if round_id is None:
        return None  # generated before (by this gateway or another)
    session.execute(
        insert_into(RoundPoint),
        [_point_row(round_id, seq, p, locations.get(p.checkpoint)) for seq, p in enumerate(spec.points)],
    )
    first_due = min([p.closes_at for p in spec.points] + [spec.ends_at + spec.grace])
    deadlines.schedule(session, ROUND_CLOSE, round_subject(round_id), first_due, {"round_id": round_id}, now)
    return round_id


def _point_row(round_id: int, seq: int, p: RoundPointSpec, location_id: int | None) -> dict[str, Any]:
    return {
        "round_id": round_id,
        "seq": seq,
        "checkpoint": p.checkpoint,
        "location_id": location_id,
        "order": p.order,
        "opens_at": p.opens_at,
        "due_at": p.due_at,
        "closes_at": p.closes_at,
        "min_gap_s": p.min_gap_s,
        "result": "pending",
    }


# --- reading and writing ---------------------------------------------------------------------------


@dataclass
class LoadedRound:
    """A round's rows and the pure value read from them; `save` writes back what changed."""

    row: RoundRow
    points: list[RoundPoint]
    value: Round


def as_value(row: RoundRow, points: Sequence[RoundPoint], guard: str, *, fresh: bool = False) -> Round:
    """The pure round of these rows; `fresh`: as generated, before any sign-in (for a replay)."""
    return Round(
        id=row.id,
        guard=guard,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        grace_s=row.grace_s,
        makeup=row.makeup,
        state="scheduled" if fresh else row.state,  # type: ignore[arg-type]
        points=tuple(
            Point(
                p.checkpoint,
                p.order,
                p.opens_at,
                p.due_at,
                p.closes_at,
                p.min_gap_s,
                "pending" if fresh else p.result,  # type: ignore[arg-type]
                None if fresh else p.signed_at,
                None if fresh else p.condition,  # type: ignore[arg-type]
            )
            for p in sorted(points, key=lambda p: p.seq)
        ),
        last_signed_at=None if fresh else row.last_signed_at,
        last_point=None if fresh else row.last_point,
        early_s=row.grace_s,  # the plan's grace both ways: up to it before a point's window opens is `early`
    )


def load_rounds(session: Session, ids: Iterable[int], *, lock: bool) -> dict[int, LoadedRound]:
    """Rounds with their points, locked FOR UPDATE on PostgreSQL (in id order, so two gateways take
    them in the same order); callers lock the guards' staff rows first."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return load_where(session, [RoundRow.id.in_(wanted)], lock=lock)


def lock_round(session: Session, round_id: int, *more_guards: int) -> LoadedRound | None:
    """One round, locked as the tap handler locks it: its guard's staff row (and `more_guards`', in id
    order) first, then the round; None when there is no such round."""
    guard_id = session.scalar(select(RoundRow.guard_id).where(RoundRow.id == round_id))
    if guard_id is None:
        return None
    lock_rows(session, Staff, sorted({guard_id, *more_guards}))
    return load_rounds(session, [round_id], lock=True).get(round_id)


def load_where(
    session: Session, where: Sequence[ColumnElement[bool]], *, lock: bool, guards: Mapping[int, str] | None = None
) -> dict[int, LoadedRound]:
    """The rounds matching `where` with their points, in two statements (locked in id order, as
    `load_rounds`); `guards` ({staff id: code}) spares the query for the guards' codes."""
    query = select(RoundRow).where(*where).order_by(RoundRow.id)
    rows = list(session.scalars(query.with_for_update() if lock else query))
    if not rows:
        return {}
    points: dict[int, list[RoundPoint]] = {r.id: [] for r in rows}
    for p in session.scalars(select(RoundPoint).where(RoundPoint.round_id.in_(list(points)))):
        points[p.round_id].append(p)
    codes = dict(guards or {})
    missing = {r.guard_id for r in rows} - codes.keys()
    if missing:
        codes.update(session.execute(select(Staff.id, Staff.code).where(Staff.id.in_(missing))).all())
    return {r.id: LoadedRound(r, points[r.id], as_value(r, points[r.id], codes.get(r.guard_id, ""))) for r in rows}


def save(session: Session, loaded: LoadedRound, new: Round, now: datetime) -> bool:
    """Write back the points and round fields that changed; True when anything did."""
    by_code = {p.checkpoint: p for p in loaded.points}
    changed = False
    for point in new.points:
        row = by_code[point.code]
        values: dict[str, Any] = {"result": point.result, "signed_at": point.signed_at, "condition": point.condition}
        if any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)  # written by the session's flush, with the round's own changes
            changed = True
    round_row = loaded.row
    fields: dict[str, Any] = {
        "state": new.state,
        "completion_pct": completion_pct(new),
        "lateness_s": lateness_s(new),
        "last_signed_at": new.last_signed_at,
        "last_point": new.last_point,
    }
    if new.state in FINAL_STATES and round_row.ended_at is None:
        fields["ended_at"] = now
    if any(getattr(round_row, k) != v for k, v in fields.items()):
        for k, v in fields.items():
            setattr(round_row, k, v)
        changed = True
    loaded.value = new
    return changed
