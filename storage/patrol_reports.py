"""Patrol reports (issue 8 item 9): what core.coverage needs, loaded in a few queries, and its answers.

- Weekly coverage (P1 §2.5, shops with their floor P1 §2.4): a checkpoint's responsibility area is
  the `area` of every route of the site that lists it; its place (building, floor, location type)
  comes from `locations`; a visit is a sign-in at a checkpoint (refused ones are passed on with
  `ok=False`, the rule drops them). One query for the places, one for the sign-ins of the weeks.
- Round statistics per guard and per route (daily, weekly, monthly) and the 巡查记录 (each round's
  points): rounds that start on a local day between `start` and `end` (both inclusive), read with
  their guard in one query and with every point of them in a second one.
Times go in and out as aware UTC datetimes; days are the site's local calendar days.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.coverage import (
    AreaCheckpoint,
    AreaCoverage,
    CoverageItem,
    Period,
    RoundStats,
    RouteRound,
    SignedVisit,
    round_stats,
    week_of,
    weekly_coverage,
)
from core.patrol_plans import RouteSpec
from core.procedures import Text
from core.rounds import Point, Round
from storage.models import Building, Floor, Location, SignIn, Site, Staff
from storage.models import Round as RoundRow
from storage.models import RoundPoint as RoundPointRow


@dataclass(frozen=True, slots=True)
class ReportSite:
    """The site a report is about: its code, names, time zone and routes (validated)."""

    id: int
    code: str
    name: Text
    timezone: str
    routes: tuple[RouteSpec, ...]

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def route_name(self, code: str) -> Text:
        route = next((r for r in self.routes if r.code == code), None)
        return route.name if route else Text(zh=code, en=code)


def find_site(session: Session, code: str) -> ReportSite | None:
    site = session.scalars(select(Site).where(Site.code == code)).one_or_none()
    if site is None:
        return None
    return ReportSite(
        id=site.id,
        code=site.code,
        name=Text(zh=site.name_zh, en=site.name_en),
        timezone=site.timezone,
        routes=tuple(RouteSpec.model_validate(r) for r in site.routes or []),
    )


def local_start(day: date, tz: tzinfo) -> datetime:
    """The first instant of the site's local `day`, in UTC."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


# --- places -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceRow:
    code: str
    name: Text
    kind: str
    building: str | None
    building_name: Text | None
    floor: int | None
    floor_label: str | None


@dataclass(frozen=True, slots=True)
class Places:
    """Every location of a site by code, with building and floor names, to label report lines."""

    by_code: dict[str, PlaceRow]
    floors: dict[tuple[str, int], tuple[Text, str]]  # (building, floor) → building name, floor label

    def name(self, code: str) -> Text:
        place = self.by_code.get(code)
        return place.name if place else Text(zh=code, en=code)

    def floor_label(self, building: str | None, floor: int | None) -> str | None:
        found = self.floors.get((building, floor)) if building is not None and floor is not None else None
        return found[1] if found else None

    def label(self, item: CoverageItem) -> Text:
        """ "1栋 3F" / "Building 1 3F" for a floor, the location's own name for a facility."""
        if item.checkpoint is not None:
            return self.name(item.checkpoint)
        found = self.floors.get((item.building, item.floor)) if item.building and item.floor is not None else None
        if found is None:
            return item.label()
        building, floor = found
        return Text(zh=f"{building.zh} {floor}", en=f"{building.en} {floor}")


def load_places(session: Session, site_id: int) -> Places:
    rows = session.execute(
        select(Location, Building.code, Building.name_zh, Building.name_en, Floor.number, Floor.label)
        .outerjoin(Building, Building.id == Location.building_id)
        .outerjoin(Floor, Floor.id == Location.floor_id)
        .where(Location.site_id == site_id)
    ).all()
    places = {
        loc.code: PlaceRow(
            code=loc.code,
            name=Text(zh=loc.name_zh, en=loc.name_en),
            kind=loc.type,
            building=building,
            building_name=Text(zh=b_zh, en=b_en) if building else None,
            floor=number,
            floor_label=label,
        )
        for loc, building, b_zh, b_en, number, label in rows
    }
    floors = {
        (p.building, p.floor): (p.building_name, p.floor_label)
        for p in places.values()
        if p.building is not None and p.floor is not None and p.building_name and p.floor_label
    }
    return Places(places, floors)


# --- coverage ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WeekCoverage:
    """One ISO week of a site (P1 §2.5): each area's coverage and the routes that make up the area."""

    week_start: date
    areas: dict[str, AreaCoverage]
    routes: dict[str, tuple[str, ...]]  # area → its route codes


def area_checkpoints(site: ReportSite, places: Places) -> list[AreaCheckpoint]:
    """Each (area, checkpoint) of the site's routes, placed; a checkpoint on two routes of one area once."""
    seen: set[tuple[str, str]] = set()
    out: list[AreaCheckpoint] = []
    for route in site.routes:
        for point in route.points:
            if (route.area, point.checkpoint) in seen:
                continue
            seen.add((route.area, point.checkpoint))
            place = places.by_code.get(point.checkpoint)
            out.append(
                AreaCheckpoint(
                    area=route.area,
                    checkpoint=point.checkpoint,
                    building=place.building if place else None,
                    floor=place.floor if place else None,
                    kind=place.kind if place else "unknown",
                )
            )
    return out


def coverage_weeks(session: Session, site: ReportSite, places: Places, first: date, last: date) -> list[WeekCoverage]:
    """Coverage of every ISO week from `first`'s to `last`'s, with one query for all their sign-ins."""
    start, end = week_of(first), week_of(last) + timedelta(days=7)
    tz = site.tz
    rows = session.execute(
        select(Location.code, Staff.code, SignIn.tapped_at, SignIn.ok)
        .join(Location, Location.id == SignIn.location_id)
        .outerjoin(Staff, Staff.id == SignIn.guard_id)
        .where(
            SignIn.site_id == site.id,
            SignIn.tapped_at >= local_start(start, tz),
            SignIn.tapped_at < local_start(end, tz),
        )
    ).all()
    by_week: dict[date, list[SignedVisit]] = defaultdict(list)
    for code, guard, at, ok in rows:
        by_week[week_of(at.astimezone(tz).date())].append(SignedVisit(code, guard or "", at, ok))
    points = area_checkpoints(site, places)
    routes: dict[str, list[str]] = defaultdict(list)
    for route in site.routes:
        routes[route.area].append(route.code)
    frozen = {area: tuple(codes) for area, codes in routes.items()}
    weeks = [start + timedelta(days=7 * i) for i in range((end - start).days // 7)]
    return [WeekCoverage(w, weekly_coverage(points, by_week[w], w, tz), frozen) for w in weeks]


# --- rounds -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """A round as the 巡查记录 prints it: where, who, and its points (core.rounds.Round)."""

    plan: str
    route: str
    area: str
    guard_name: Text
    round: Round
    finish_reason: str | None
    alert_comment: str | None


@dataclass(frozen=True, slots=True)
class PatrolReport:
    """Round statistics per guard and per route for each period, and the rounds behind them."""

    site: ReportSite
    period: Period
    start: date
    end: date
    stats: list[RoundStats]
    rounds: list[RoundRecord]
    guard_names: dict[str, Text]

    def by(self, group: str) -> list[RoundStats]:
        return [s for s in self.stats if s.by == group]

    def name_of(self, stats: RoundStats) -> Text:
        if stats.by == "route":
            return self.site.route_name(stats.key)
        return self.guard_names.get(stats.key, Text(zh=stats.key, en=stats.key))


def load_rounds(session: Session, site: ReportSite, start: date, end: date) -> list[RoundRecord]:
    """Rounds of the site that start on a local day in [start, end], oldest first, with their points."""
    tz = site.tz
    where = (
        RoundRow.site_id == site.id,
        RoundRow.starts_at >= local_start(start, tz),
        RoundRow.starts_at < local_start(end + timedelta(days=1), tz),
    )
    rounds = session.execute(
        select(RoundRow, Staff.code, Staff.name_zh, Staff.name_en)
        .join(Staff, Staff.id == RoundRow.guard_id)
        .where(*where)
        .order_by(RoundRow.starts_at, RoundRow.id)
    ).all()
    points: dict[int, list[Point]] = defaultdict(list)
    for p in session.scalars(
        select(RoundPointRow)
        .join(RoundRow, RoundRow.id == RoundPointRow.round_id)
        .where(*where)
        .order_by(RoundPointRow.round_id, RoundPointRow.seq)
    ):
        points[p.round_id].append(
            Point(
                code=p.checkpoint,
                order=p.order,
                opens_at=p.opens_at,
                due_at=p.due_at,
                closes_at=p.closes_at,
                min_gap_s=p.min_gap_s,
                result=p.result,  # type: ignore[arg-type]  # stored from core.rounds.PointResult
                signed_at=p.signed_at,
                condition=p.condition,  # type: ignore[arg-type]
            )
        )
    return [
        RoundRecord(
            plan=r.plan,
            route=r.route,
            area=r.area,
            guard_name=Text(zh=name_zh, en=name_en),
            round=Round(
                id=r.id,
                guard=guard,
                starts_at=r.starts_at,
                ends_at=r.ends_at,
                grace_s=r.grace_s,
                makeup=r.makeup,
                state=r.state,  # type: ignore[arg-type]  # stored from core.rounds.RoundState
                points=tuple(points[r.id]),
                last_signed_at=r.last_signed_at,
                last_point=r.last_point,
            ),
            finish_reason=r.finish_reason,
            alert_comment=r.alert_comment,
        )
        for r, guard, name_zh, name_en in rounds
    ]


def patrol_report(session: Session, site: ReportSite, period: Period, start: date, end: date) -> PatrolReport:
    """Statistics per guard and per route of the rounds starting between `start` and `end` (local days)."""
    records = load_rounds(session, site, start, end)
    stats = round_stats((RouteRound(r.route, r.round) for r in records), period, site.tz)
    names = {r.round.guard: r.guard_name for r in records}
    return PatrolReport(site, period, start, end, stats, records, names)
