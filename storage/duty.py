"""Who is on duty and where the guards are: the site's roster and latest sign-ins, as the pure
rules of core.escalation want them."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.escalation import DutyShift, GuardPosition, RosterSpec, muster_recipients, nearest_guard
from storage.db import held
from storage.models import Building, Department, Floor, Location, SignIn, Site, Staff

log = logging.getLogger(__name__)


def roster_of(session: Session, site_id: int) -> tuple[list[DutyShift], str]:
    """The site's duty shifts and its timezone. Shifts of staff no longer in the site file are
    left out (the file loader refuses them; the database may be older than the rule)."""
    site = held(session, Site, site_id)
    if site is None:
        return [], "Asia/Shanghai"
    staff = {
        code: (dept, position)
        for code, dept, position in session.execute(
            select(Staff.code, Department.code, Staff.position)
            .join(Department, Department.id == Staff.department_id)
            .where(Staff.site_id == site_id, Staff.active.is_(True))
        )
    }
    spec = RosterSpec.model_validate(site.roster or [])
    known = RosterSpec(root=[e for e in spec.root if e.staff in staff])
    if len(known.root) != len(spec.root):
        log.warning("site %s: roster names staff who are not active; they are left out", site.code)
    return known.shifts(staff), site.timezone


def first_responder(
    session: Session,
    site_id: int,
    building_id: int | None,
    floor: int | None,
    now: datetime,
    roster: tuple[list[DutyShift], str] | None = None,
) -> str | None:
    """The guard on duty nearest the place (same building, then nearest floor, by last sign-in)."""
    shifts, tz = roster or roster_of(session, site_id)
    on_duty = muster_recipients(shifts, now, tz)
    if not on_duty:
        return None
    building = held(session, Building, building_id)
    return nearest_guard(_positions(session, site_id, on_duty), building.code if building else None, floor)


def _positions(session: Session, site_id: int, codes: list[str]) -> list[GuardPosition]:
    """Each guard's latest good sign-in and where it was, in two queries whatever the number of guards."""
    found = session.execute(select(Staff.id, Staff.code).where(Staff.site_id == site_id, Staff.code.in_(codes)))
    guards: dict[int, str] = {staff_id: code for staff_id, code in found}
    latest = (
        select(SignIn.guard_id, func.max(SignIn.tapped_at).label("at"))
        .where(SignIn.guard_id.in_(list(guards)), SignIn.ok.is_(True))
        .group_by(SignIn.guard_id)
        .subquery()
    )
    rows = session.execute(
        select(SignIn.guard_id, SignIn.tapped_at, Building.code, Floor.number)
        .join(latest, (latest.c.guard_id == SignIn.guard_id) & (latest.c.at == SignIn.tapped_at))
        .join(Location, Location.id == SignIn.location_id)
        .outerjoin(Building, Building.id == Location.building_id)
        .outerjoin(Floor, Floor.id == Location.floor_id)
        .where(SignIn.ok.is_(True))
    )
    seen = {guard_id: GuardPosition(guards[guard_id], b, f, at) for guard_id, at, b, f in rows if guard_id is not None}
    return [seen.get(staff_id, GuardPosition(code, None, None, None)) for staff_id, code in guards.items()]
