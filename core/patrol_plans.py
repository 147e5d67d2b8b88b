"""Patrol routes and plans, and the rounds a plan calls for on one day (issue 8; P0 §1, P1 §2.3–2.4).

Pure: the site file's `routes:` and `plans:` sections are validated here (the loader adds line
numbers), and `rounds_due` turns a plan into concrete rounds for one local calendar day, given who
is on duty. Storage makes generation idempotent with `RoundSpec.key` (plan, guard, start).

A route (P1 §2.3: which places, in what order) is a list of checkpoints in one responsibility area
(责任区域). `order` 1…n is a fixed sequence, 0 means "any time during the round". Shops are walked
together with their floor (P1 §2.4): list the shop point right after its floor's point. Each point
needs a minimum time since the previous sign-in so nobody can rush a round: `min_gap_s` when
given, otherwise derived from floors and buildings by `walking_gap_s`.

Times in a plan are the site's wall-clock times; rounds come out as aware UTC datetimes. A round
belongs to the day it starts, even when it ends after midnight.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Literal, NamedTuple, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from core.escalation import Clock, Days, floor_distance
from core.procedures import Text

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
DayMinutes = Annotated[int, Field(ge=0, le=24 * 60)]

#: Walking-time constants (seconds) behind `walking_gap_s`: a brisk walk, never a run. Two points on
#: one floor take at least 20 s; each floor of stairs adds 15 s; another building adds 90 s (out,
#: across, in) and the floors down to the ground floor and up again.
SAME_FLOOR_S = 20
PER_FLOOR_S = 15
OTHER_BUILDING_S = 90

#: P0 §1: patrol times are spread over the morning and evening peaks (site wall-clock, [from, to)).
PEAKS: dict[str, tuple[time, time, Text]] = {
    "morning": (time(7, 0), time(9, 0), Text(zh="早高峰", en="morning peak")),
    "evening": (time(17, 0), time(20, 0), Text(zh="晚高峰", en="evening peak")),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- routes ---------------------------------------------------------------------------------------


class WindowSpec(_Strict):
    """When a point may be signed, in minutes from the round's start: `{from_min: 0, to_min: 15}`."""

    from_min: DayMinutes
    to_min: DayMinutes

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.to_min <= self.from_min:
            raise ValueError(f"window: to_min ({self.to_min}) must be after from_min ({self.from_min})")
        return self


class RoutePointSpec(_Strict):
    checkpoint: Code  # a location code (`locations:`)
    order: Annotated[int, Field(ge=0, le=1000)] = 0
    window: WindowSpec | None = None
    min_gap_s: Annotated[int, Field(ge=0, le=3600)] | None = None


class RouteSpec(_Strict):
    """One line of `routes:`; P1 §2.3: a plan says which places, in which order."""

    code: Code
    name: Text
    area: Code  # the responsibility area (责任区域) the route covers
    points: Annotated[list[RoutePointSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _sequence(self) -> Self:
        seen: set[str] = set()
        for p in self.points:
            if p.checkpoint in seen:
                raise ValueError(f"checkpoint `{p.checkpoint}` is listed twice: keep one of them")
            seen.add(p.checkpoint)
        fixed = sorted(p.order for p in self.points if p.order)
        expected = list(range(1, len(fixed) + 1))
        if fixed != expected:
            dupes = sorted({o for o in fixed if fixed.count(o) > 1})
            gaps = sorted(set(expected) - set(fixed))
            what = f"order {_listing(dupes)} used twice" if dupes else f"order {_listing(gaps)} missing"
            raise ValueError(
                f"fixed orders must run 1..{len(fixed)} without gaps or repeats ({what}): "
                "renumber them, or use order 0 for points that may be signed in any order"
            )
        return self

    def sequence(self) -> list[RoutePointSpec]:
        """Points in walking order: the fixed sequence first, then any-order points as listed."""
        return sorted(self.points, key=lambda p: (p.order == 0, p.order))


def _listing(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers))


class Place(NamedTuple):
    """Where a checkpoint is: building code and floor (1 = ground floor, -1 first basement)."""

    building: str | None
    floor: int | None


@dataclass(frozen=True, slots=True)
class GapRules:
    """The constants of `walking_gap_s`, overridable per site."""

    same_floor_s: int = SAME_FLOOR_S
    per_floor_s: int = PER_FLOOR_S
    other_building_s: int = OTHER_BUILDING_S


def walking_gap_s(prev: Place, nxt: Place, overrides: GapRules | None = None) -> int:
    """The least seconds a guard needs from `prev` to `nxt`. An unknown building or floor counts as
    no distance (never refuse an honest tap because the site file says too little)."""
    rules = overrides or GapRules()
    gap = rules.same_floor_s
    other = prev.building is not None and nxt.building is not None and prev.building != nxt.building
    if other:
        gap += rules.other_building_s
    if prev.floor is not None and nxt.floor is not None:
        if other:  # down to the ground floor, across, up again
            floors = floor_distance(prev.floor, 1) + floor_distance(1, nxt.floor)
        else:
            floors = floor_distance(prev.floor, nxt.floor)
        gap += floors * rules.per_floor_s
    return gap


# --- plans ----------------------------------------------------------------------------------------


class PeriodSpec(_Strict):
    """Which days: `{every: day}`, `{every: week, weekdays: mon-fri}`, `{every: month, days_of_month:
    [1, 15]}`; `months: [6, 7, 8]` narrows any of them. A day 29–31 is skipped in shorter months."""

    every: Literal["day", "week", "month"]
    weekdays: Days | None = None
    days_of_month: Annotated[list[Annotated[int, Field(ge=1, le=31)]], Field(min_length=1)] | None = None
    months: Annotated[list[Annotated[int, Field(ge=1, le=12)]], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.every == "week" and self.weekdays is None:
            raise ValueError("`every: week` needs `weekdays:`, e.g. `weekdays: mon-fri`")
        if self.every == "month" and self.days_of_month is None:
            raise ValueError("`every: month` needs `days_of_month:`, e.g. `days_of_month: [1, 15]`")
        if self.every != "week" and self.weekdays is not None:
            raise ValueError(f"`weekdays:` belongs to `every: week`, not `every: {self.every}`")
        if self.every != "month" and self.days_of_month is not None:
            raise ValueError(f"`days_of_month:` belongs to `every: month`, not `every: {self.every}`")
        return self

    def includes(self, day: date) -> bool:
        if self.months is not None and day.month not in self.months:
            return False
        if self.weekdays is not None:
            return day.isoweekday() in self.weekdays
        if self.days_of_month is not None:
            return day.day in self.days_of_month
        return True


class PlanSpec(_Strict):
    """One line of `plans:` (巡查计划): a route, who walks it, on which days and when."""

    code: Code
    name: Text | None = None
    route: Code
    guards: Annotated[list[Code], Field(min_length=1)] | None = None
    shift: StrictBool = False  # everyone on duty walks it (the candidates come from the caller)
    period: PeriodSpec
    from_date: date
    to_date: date | None = None  # inclusive; none: until further notice
    starts: Annotated[list[Clock], Field(min_length=1)] | dict[Code, Annotated[list[Clock], Field(min_length=1)]]
    duration_min: Annotated[int, Field(ge=1, le=24 * 60)]
    grace_min: Annotated[int, Field(ge=0, le=240)] = 0
    makeup: StrictBool = False  # a late point may still be signed
    early_finish: StrictBool = False  # may be finished early, with a reason

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.guards is None) == (not self.shift):
            raise ValueError("say who walks the plan: either `guards: [codes]` or `shift: true`, not both")
        if self.guards is not None and len(set(self.guards)) != len(self.guards):
            raise ValueError("a guard is listed twice in `guards:`: keep one")
        if self.to_date is not None and self.to_date < self.from_date:
            raise ValueError(f"to_date {self.to_date} is before from_date {self.from_date}: swap or correct them")
        lists = self.starts.values() if isinstance(self.starts, dict) else [self.starts]
        for times in lists:
            if len(set(times)) != len(times):
                raise ValueError("a start time is listed twice: keep one")
        if isinstance(self.starts, dict):
            if self.guards is None:
                raise ValueError("start times per guard need `guards:`; with `shift: true` give one list")
            stray = sorted(set(self.starts) - set(self.guards))
            if stray:
                raise ValueError(f"`starts:` names {stray}, who are not in `guards:`: add them or remove them")
        return self

    def active_on(self, day: date) -> bool:
        """Whether the plan calls for rounds on this local calendar day."""
        in_range = self.from_date <= day and (self.to_date is None or day <= self.to_date)
        return in_range and self.period.includes(day)

    def starts_for(self, guard: str) -> list[time]:
        if isinstance(self.starts, dict):
            return sorted(self.starts.get(guard, []))
        return sorted(self.starts)


def missing_peaks(plan: PlanSpec) -> list[str]:
    """P0 §1: the peaks (`PEAKS` keys) no round of the plan overlaps: advice for the loader to show,
    not a refusal (a night route need not cover the morning peak)."""
    lists = plan.starts.values() if isinstance(plan.starts, dict) else [plan.starts]
    spans = [(_minutes(t), _minutes(t) + plan.duration_min) for times in lists for t in times]
    missing = []
    for key, (begin, end, _) in PEAKS.items():
        lo, hi = _minutes(begin), _minutes(end)
        if not any((s < hi and e > lo) or (s < hi + 1440 and e > lo + 1440) for s, e in spans):  # past midnight too
            missing.append(key)
    return missing


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference to nothing, found by `cross_check`: where in the site file (for its line number) and why."""

    path: tuple[str | int, ...]  # e.g. ("routes", 0, "points", 2, "checkpoint")
    owner: str  # e.g. "routes[b1_day]"
    message: str

    def __str__(self) -> str:
        return f"{self.owner}: {self.message}"


def cross_check(
    routes: Sequence[RouteSpec], plans: Sequence[PlanSpec], checkpoints: Collection[str], staff: Collection[str]
) -> list[Reference]:
    """What refers to nothing, one problem each: a route's unknown checkpoint, a plan's unknown route
    or guard, a window that ends after the round's end plus grace, a code used twice. Empty when all is well."""
    problems: list[Reference] = []
    by_code = {r.code: r for r in routes}
    for kind, codes in (("routes", [r.code for r in routes]), ("plans", [p.code for p in plans])):
        seen: set[str] = set()
        for i, code in enumerate(codes):
            if code in seen:
                problems.append(Reference((kind, i, "code"), f"{kind}[{code}]", "code is used twice"))
            seen.add(code)
    for i, r in enumerate(routes):
        problems += [
            Reference(
                ("routes", i, "points", j, "checkpoint"),
                f"routes[{r.code}]",
                f"checkpoint `{p.checkpoint}` is not in `locations:`",
            )
            for j, p in enumerate(r.points)
            if p.checkpoint not in checkpoints
        ]
    for i, plan in enumerate(plans):
        owner = f"plans[{plan.code}]"
        route = by_code.get(plan.route)
        if route is None:
            problems.append(Reference(("plans", i, "route"), owner, f"route `{plan.route}` is not in `routes:`"))
        else:
            last = plan.duration_min + plan.grace_min
            problems += [
                Reference(
                    ("plans", i, "duration_min"),
                    owner,
                    f"window of `{p.checkpoint}` ends at {p.window.to_min} min, after the round's "
                    f"{plan.duration_min} min + {plan.grace_min} min grace: lengthen the round or the window",
                )
                for p in route.points
                if p.window is not None and p.window.to_min > last
            ]
        problems += [
            Reference(("plans", i, "guards", j), owner, f"guard `{g}` is not in `staff:`")
            for j, g in enumerate(plan.guards or [])
            if g not in staff
        ]
    return problems


# --- rounds for one day ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoundPointSpec:
    checkpoint: str
    order: int
    opens_at: datetime
    due_at: datetime  # on time until (inclusive): the window's end, or the round's end
    closes_at: datetime  # shut from: `due_at` + grace with make-up, else just after `due_at`
    min_gap_s: int  # since the previous sign-in of the round; 0 for the first point


@dataclass(frozen=True, slots=True)
class RoundSpec:
    """A round a plan calls for; `key` makes generation idempotent (one per plan, guard and start)."""

    plan: str
    route: str
    guard: str
    starts_at: datetime
    ends_at: datetime
    grace: timedelta
    makeup: bool
    early_finish: bool
    points: tuple[RoundPointSpec, ...]

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.plan, self.guard, self.starts_at)


def point_gaps(route: RouteSpec, places: Mapping[str, Place], rules: GapRules | None = None) -> dict[str, int]:
    """Each point's minimum gap: its `min_gap_s`, else the walk from the previous fixed point (the
    first fixed point: 0). An any-order point may follow any other, so it gets the shortest walk
    from any other point of the route."""
    nowhere = Place(None, None)
    gaps: dict[str, int] = {}
    previous: str | None = None
    for p in route.sequence():
        here = places.get(p.checkpoint, nowhere)
        if p.order:
            derived = 0 if previous is None else walking_gap_s(places.get(previous, nowhere), here, rules)
            previous = p.checkpoint
        else:
            others = [places.get(o.checkpoint, nowhere) for o in route.points if o.checkpoint != p.checkpoint]
            derived = min((walking_gap_s(o, here, rules) for o in others), default=0)
        gaps[p.checkpoint] = p.min_gap_s if p.min_gap_s is not None else derived
    return gaps


#: without make-up a late sign-in is not taken: the point's window shuts just after its due time
NO_MAKEUP_SLACK = timedelta(milliseconds=1)


def _point(p: RoutePointSpec, start: datetime, duration: timedelta, plan: PlanSpec, gap_s: int) -> RoundPointSpec:
    """A route point's times in a round: open from the window's start (or the round's), on time until
    the window's end (or the round's end); with make-up a late sign-in is taken for the grace period."""
    opens = start + timedelta(minutes=p.window.from_min) if p.window else start
    due = start + timedelta(minutes=p.window.to_min) if p.window else start + duration
    grace = timedelta(minutes=plan.grace_min)
    closes = due + (grace if plan.makeup and grace else NO_MAKEUP_SLACK)
    return RoundPointSpec(p.checkpoint, p.order, opens, due, closes, gap_s)


def rounds_due(
    plan: PlanSpec,
    route: RouteSpec,
    places: Mapping[str, Place],
    day: date,
    tz: tzinfo | str,
    on_duty: Callable[[str, datetime], bool],
    *,
    shift_guards: Sequence[str] = (),
    rules: GapRules | None = None,
) -> list[RoundSpec]:
    """Every round the plan calls for on the local day `day`: one per (guard, start time), only for
    a guard on duty at the start. `shift_guards` are the candidates of a `shift: true` plan (e.g.
    the guards of the route's department). Ordered by start, then guard."""
    if route.code != plan.route:
        raise ValueError(f"plan `{plan.code}` walks route `{plan.route}`, not `{route.code}`")
    if not plan.active_on(day):
        return []
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    gaps = point_gaps(route, places, rules)
    duration, grace = timedelta(minutes=plan.duration_min), timedelta(minutes=plan.grace_min)
    candidates = plan.guards if plan.guards is not None else list(dict.fromkeys(shift_guards))
    rounds: list[RoundSpec] = []
    for guard in candidates:
        for clock in plan.starts_for(guard):
            start = datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)
            if not on_duty(guard, start):
                continue
            points = tuple(_point(p, start, duration, plan, gaps[p.checkpoint]) for p in route.sequence())
            rounds.append(
                RoundSpec(
                    plan.code, route.code, guard, start, start + duration, grace, plan.makeup, plan.early_finish, points
                )
            )
    return sorted(rounds, key=lambda r: (r.starts_at, r.guard))
