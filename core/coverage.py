"""Patrol coverage and round statistics (issue 8 item 9; P1 §2.4, P1 §2.5, P0 standards).

Pure: plain frozen values in, plain frozen values out; the caller loads checkpoints, sign-ins and
rounds from storage and says which time zone the site keeps. Nothing here reads a clock.

Coverage (P1 §2.5: every floor of a responsibility area 责任区域 and its facilities, twice a week).
"Twice a week" is read as **two distinct local days** of the ISO week (Monday–Sunday in the site's
time zone), not two sign-ins: a guard tapping a floor twice within five minutes has patrolled it
once, and the procedure asks for the floor to be looked at on two occasions spread over the week.
- A floor is one (building, floor) of the area, taken from every checkpoint of the area that has
  both. It counts as patrolled on a day when any checkpoint on it had an ok sign-in that day; shops
  count with their floor (P1 §2.4), and so does a facility room on that floor (the guard was there).
- A facility (machine, pipe, fan, telecom, pump, switch, elevator rooms, elevators, fire control;
  `FACILITY_KINDS`) is also counted on its own: its own checkpoint must be signed on two days.
- Refused or failed sign-ins (`ok=False`) do not count; sign-ins outside the week are ignored.

Statistics (per guard and per route; daily, weekly, monthly): a round belongs to the local period
in which it starts. Only ended rounds (completed / incomplete / missed) are "done" and enter the
completion mean; rounds still scheduled or in progress are counted as `open` and nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Literal

from core.procedures import Text
from core.rounds import FINAL_STATES, Round, lateness_s

Period = Literal["day", "week", "month"]
GroupBy = Literal["guard", "route"]

#: Location types (site file `locations[].type`) that are facilities in the sense of P1 §2.5 and the
#: facility integrity rate 设施完好率 of the P0 standards; "facility" is the generic one.
FACILITY_KINDS: frozenset[str] = frozenset(
    {
        "facility",
        "machine_room",
        "pipe_well",
        "fan_room",
        "telecom_room",
        "pump_room",
        "switch_room",
        "elevator_room",
        "elevator",
        "fire_control_room",
    }
)
REQUIRED_DAYS = 2  # P1 §2.5: twice a week

PERIOD_TEXT: dict[Period, Text] = {
    "day": Text(zh="日报", en="daily report"),
    "week": Text(zh="周报", en="weekly report"),
    "month": Text(zh="月报", en="monthly report"),
}


# --- coverage ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AreaCheckpoint:
    """A checkpoint of a responsibility area and where it is; `kind` is the site file's location type."""

    area: str
    checkpoint: str
    building: str | None
    floor: int | None
    kind: str

    @property
    def is_facility(self) -> bool:
        return self.kind in FACILITY_KINDS


@dataclass(frozen=True, slots=True)
class SignedVisit:
    """One sign-in at a checkpoint (aware `at`); `ok` False for a refused or failed one."""

    checkpoint: str
    guard: str
    at: datetime
    ok: bool


@dataclass(frozen=True, slots=True)
class CoverageItem:
    """A floor (`checkpoint` None) or a facility of an area, and the local days it was patrolled."""

    building: str | None
    floor: int | None
    checkpoint: str | None
    days: tuple[date, ...]
    required: int

    @property
    def count(self) -> int:
        return len(self.days)

    @property
    def covered(self) -> bool:
        return self.count >= self.required

    def label(self) -> Text:
        """How a report names the item: "B1 栋 3 层" / "building B1 floor 3", or the facility's code."""
        if self.checkpoint is not None:
            return Text(zh=f"设施 {self.checkpoint}", en=f"facility {self.checkpoint}")
        return Text(zh=f"{self.building} 栋 {self.floor} 层", en=f"building {self.building} floor {self.floor}")


@dataclass(frozen=True, slots=True)
class AreaCoverage:
    """One responsibility area's week (P1 §2.5): its floors, its facilities, and what fell short."""

    area: str
    week_start: date
    required: int
    floors: tuple[CoverageItem, ...]
    facilities: tuple[CoverageItem, ...]

    @property
    def gaps(self) -> tuple[CoverageItem, ...]:
        """Floors, then facilities, patrolled on fewer than `required` days."""
        return tuple(i for i in self.floors + self.facilities if not i.covered)

    @property
    def covered(self) -> bool:
        return not self.gaps


def week_of(day: date) -> date:
    """The Monday that starts `day`'s ISO week."""
    return day - timedelta(days=day.weekday())


def local_day(at: datetime, tz: tzinfo) -> date:
    """The site's calendar day of an aware instant (a naive one is refused: its day is unknowable)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: give an aware one")
    return at.astimezone(tz).date()


def weekly_coverage(
    area_points: Iterable[AreaCheckpoint],
    visits: Iterable[SignedVisit],
    week_start: date,
    tz: tzinfo,
    required: int = REQUIRED_DAYS,
) -> dict[str, AreaCoverage]:
    """Coverage of every area in `area_points` for the ISO week starting `week_start` (a Monday), by
    distinct local days with an ok sign-in (P1 §2.5; shops with their floor, P1 §2.4)."""
    if week_start.weekday() != 0:
        raise ValueError(f"week_start {week_start} is not a Monday; use week_of({week_start})")
    week_end = week_start + timedelta(days=7)
    points = list(area_points)
    by_code: dict[str, list[AreaCheckpoint]] = defaultdict(list)
    for p in points:
        by_code[p.checkpoint].append(p)
    floor_days: dict[tuple[str, str, int], set[date]] = defaultdict(set)
    facility_days: dict[tuple[str, str], set[date]] = defaultdict(set)
    for v in visits:
        day = local_day(v.at, tz)
        if not v.ok or not week_start <= day < week_end:
            continue
        for p in by_code.get(v.checkpoint, ()):
            if p.building is not None and p.floor is not None:
                floor_days[(p.area, p.building, p.floor)].add(day)
            if p.is_facility:
                facility_days[(p.area, p.checkpoint)].add(day)
    result: dict[str, AreaCoverage] = {}
    for area in sorted({p.area for p in points}):
        mine = [p for p in points if p.area == area]
        floors = sorted({(p.building, p.floor) for p in mine if p.building is not None and p.floor is not None})
        facilities = sorted({p for p in mine if p.is_facility}, key=lambda p: p.checkpoint)
        result[area] = AreaCoverage(
            area=area,
            week_start=week_start,
            required=required,
            floors=tuple(CoverageItem(b, f, None, _days(floor_days[(area, b, f)]), required) for b, f in floors),
            facilities=tuple(
                CoverageItem(p.building, p.floor, p.checkpoint, _days(facility_days[(area, p.checkpoint)]), required)
                for p in facilities
            ),
        )
    return result


def _days(days: set[date]) -> tuple[date, ...]:
    return tuple(sorted(days))


# --- round statistics -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteRound:
    """A round with the route its plan walks (a `Round` itself does not carry the route)."""

    route: str
    round: Round


@dataclass(frozen=True, slots=True)
class RoundStats:
    """One guard's or one route's rounds in one period (巡查统计)."""

    by: GroupBy
    key: str  # the guard or the route code
    period_start: date
    rounds: int  # ended rounds: completed + incomplete + missed
    completed: int
    incomplete: int
    missed: int
    open: int  # still scheduled or in progress: not counted anywhere else
    completion_pct: float | None  # mean over ended rounds, one decimal; None when none ended
    late_points: int
    missed_points: int
    lateness_s: int  # total seconds late over the late sign-ins


def period_start(day: date, period: Period) -> date:
    """The first day of the day / ISO week / calendar month that holds `day`."""
    if period == "day":
        return day
    if period == "week":
        return week_of(day)
    return day.replace(day=1)


def _next_start(start: date, period: Period) -> date:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def periods(start: date, end: date, period: Period) -> list[date]:
    """The starts of every period that meets [start, end] (both inclusive), in order."""
    if end < start:
        return []
    out: list[date] = []
    current = period_start(start, period)
    while current <= end:
        out.append(current)
        current = _next_start(current, period)
    return out


def round_stats(rounds: Iterable[RouteRound], period: Period, tz: tzinfo) -> list[RoundStats]:
    """Per guard and per route, per local period of the round's start: counts, completion mean,
    late and missed points, total lateness. Sorted by (by, key, period_start)."""
    groups: dict[tuple[GroupBy, str, date], list[Round]] = defaultdict(list)
    for rr in rounds:
        start = period_start(local_day(rr.round.starts_at, tz), period)
        groups[("guard", rr.round.guard, start)].append(rr.round)
        groups[("route", rr.route, start)].append(rr.round)
    return [_stats(by, key, start, rs) for (by, key, start), rs in sorted(groups.items(), key=lambda kv: kv[0])]


def _stats(by: GroupBy, key: str, start: date, rounds: Sequence[Round]) -> RoundStats:
    ended = [r for r in rounds if r.state in FINAL_STATES]
    states: Mapping[str, int] = {s: sum(r.state == s for r in ended) for s in FINAL_STATES}
    pct = round(sum(_pct(r) for r in ended) / len(ended), 1) if ended else None
    return RoundStats(
        by=by,
        key=key,
        period_start=start,
        rounds=len(ended),
        completed=states["completed"],
        incomplete=states["incomplete"],
        missed=states["missed"],
        open=len(rounds) - len(ended),
        completion_pct=pct,
        late_points=sum(p.result == "late" for r in ended for p in r.points),
        missed_points=sum(p.result == "missed" for r in ended for p in r.points),
        lateness_s=sum(lateness_s(r) for r in ended),
    )


def _pct(rnd: Round) -> float:
    """Unrounded signed ÷ all × 100, so the mean is not a mean of rounded figures."""
    if not rnd.points:
        return 100.0
    return 100.0 * sum(p.signed for p in rnd.points) / len(rnd.points)
