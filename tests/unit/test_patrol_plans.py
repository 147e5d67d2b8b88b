"""Patrol routes, plans and the rounds a plan calls for on one day (core/patrol_plans.py; P0 §1, P1 §2.3–2.4)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from core.patrol_plans import (
    NO_MAKEUP_SLACK,
    GapRules,
    Place,
    PlanSpec,
    RouteSpec,
    cross_check,
    missing_peaks,
    point_gaps,
    rounds_due,
    walking_gap_s,
)

SH = ZoneInfo("Asia/Shanghai")
NAME = {"zh": "一号楼巡查", "en": "Building 1 patrol"}

ROUTE_YAML = """
code: b1_day
name: {zh: 一号楼日间, en: Building 1 by day}
area: b1_public
points:
  - {checkpoint: b1_lobby, order: 1, window: {from_min: 0, to_min: 10}}
  - {checkpoint: b1_f2, order: 2}
  - {checkpoint: b1_f2_shop, order: 3}      # P1 §2.4: the shop right after its floor
  - {checkpoint: b2_lobby, order: 4, min_gap_s: 60}
  - {checkpoint: b1_roof_fan, order: 0}
"""
PLACES = {
    "b1_lobby": Place("b1", 1),
    "b1_f2": Place("b1", 2),
    "b1_f2_shop": Place("b1", 2),
    "b2_lobby": Place("b2", 1),
    "b1_roof_fan": Place("b1", 5),
}


def route(**changes: Any) -> RouteSpec:
    return RouteSpec.model_validate({**yaml.safe_load(ROUTE_YAML), **changes})


def plan(**changes: Any) -> PlanSpec:
    base: dict[str, Any] = {
        "code": "p_b1",
        "name": NAME,
        "route": "b1_day",
        "guards": ["g01", "g02"],
        "period": {"every": "day"},
        "from_date": "2026-12-01",
        "starts": ["08:00", "19:30"],
        "duration_min": 40,
        "grace_min": 5,
    }
    return PlanSpec.model_validate({**base, **changes})


def always(_guard: str, _at: datetime) -> bool:
    return True


# --- routes ----------------------------------------------------------------------------------------


def test_route_orders_places_p1_2_3() -> None:
    """P1 §2.3: a route says which places in which order; any-order points come after the sequence."""
    assert [p.checkpoint for p in route().sequence()] == ["b1_lobby", "b1_f2", "b1_f2_shop", "b2_lobby", "b1_roof_fan"]


def test_shop_point_after_its_floor_p1_2_4() -> None:
    """P1 §2.4: shops are patrolled with their floor: a shop point follows its floor's point, a
    same-floor walk apart."""
    r = route()
    seq = [p.checkpoint for p in r.sequence()]
    assert seq.index("b1_f2_shop") == seq.index("b1_f2") + 1
    assert point_gaps(r, PLACES)["b1_f2_shop"] == 20


@pytest.mark.parametrize(
    ("case", "points", "message"),
    [
        ("gap in fixed orders", [{"checkpoint": "a", "order": 1}, {"checkpoint": "b", "order": 3}], "order 2 missing"),
        ("repeated order", [{"checkpoint": "a", "order": 1}, {"checkpoint": "b", "order": 1}], "order 1 used twice"),
        ("starts at 2", [{"checkpoint": "a", "order": 2}], "order 1 missing"),
        ("checkpoint twice", [{"checkpoint": "a", "order": 1}, {"checkpoint": "a", "order": 2}], "listed twice"),
        ("empty route", [], "at least 1"),
        ("negative order", [{"checkpoint": "a", "order": -1}], "greater than or equal to 0"),
        ("window reversed", [{"checkpoint": "a", "window": {"from_min": 10, "to_min": 5}}], "must be after"),
        ("unknown field", [{"checkpoint": "a", "ordre": 1}], "Extra inputs"),
    ],
)
def test_bad_route_refused_with_a_message(case: str, points: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        route(points=points)


def test_any_order_route_is_valid() -> None:
    r = route(points=[{"checkpoint": "a"}, {"checkpoint": "b", "order": 0}])
    assert [p.order for p in r.sequence()] == [0, 0]


# --- walking gaps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "prev", "nxt", "expected"),
    [
        ("same floor", Place("b1", 3), Place("b1", 3), 20),
        ("two floors up", Place("b1", 1), Place("b1", 3), 20 + 2 * 15),
        ("ground to first basement is one floor", Place("b1", 1), Place("b1", -1), 20 + 15),
        ("another building, via the ground floor", Place("b1", 3), Place("b2", 2), 20 + 90 + 3 * 15),
        ("unknown floor: no floors counted", Place("b1", None), Place("b1", 9), 20),
        ("unknown building: same-building walk", Place(None, 2), Place("b2", 4), 20 + 2 * 15),
    ],
)
def test_walking_gap_from_floors_and_buildings(case: str, prev: Place, nxt: Place, expected: int) -> None:
    assert walking_gap_s(prev, nxt) == expected


def test_walking_gap_constants_overridable() -> None:
    assert walking_gap_s(Place("b1", 1), Place("b2", 2), GapRules(10, 5, 30)) == 10 + 30 + 5


def test_point_gaps_derived_unless_overridden() -> None:
    gaps = point_gaps(route(), PLACES)
    assert gaps == {
        "b1_lobby": 0,  # the first point: nothing before it
        "b1_f2": 20 + 15,
        "b1_f2_shop": 20,
        "b2_lobby": 60,  # min_gap_s overrides the derived 20 + 90 + 15
        "b1_roof_fan": 20 + 3 * 15,  # any order: the shortest walk from any other point (floor 2)
    }


# --- plans -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "changes", "message"),
    [
        ("nobody walks it", {"guards": None}, "either `guards"),
        ("guards and shift", {"shift": True}, "either `guards"),
        ("guard twice", {"guards": ["g01", "g01"]}, "listed twice"),
        ("range reversed", {"to_date": "2026-11-01"}, "before from_date"),
        ("start twice", {"starts": ["08:00", "08:00"]}, "listed twice"),
        ("unquoted time", {"starts": [800]}, "in quotes"),
        ("no start", {"starts": []}, "at least 1"),
        ("starts of a stranger", {"starts": {"g09": ["08:00"]}}, "not in `guards:`"),
        ("per guard with shift", {"guards": None, "shift": True, "starts": {"g01": ["08:00"]}}, "need `guards:`"),
        ("week without weekdays", {"period": {"every": "week"}}, "needs `weekdays:`"),
        ("month without days", {"period": {"every": "month"}}, "needs `days_of_month:`"),
        ("weekdays on a daily plan", {"period": {"every": "day", "weekdays": "mon"}}, "belongs to `every: week`"),
        ("day 32", {"period": {"every": "month", "days_of_month": [32]}}, "less than or equal to 31"),
        ("bad weekday", {"period": {"every": "week", "weekdays": "funday"}}, "is not a day"),
        ("zero duration", {"duration_min": 0}, "greater than or equal to 1"),
        ("makeup as text", {"makeup": "yes"}, "valid boolean"),
    ],
)
def test_bad_plan_refused_with_a_message(case: str, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        plan(**changes)


@pytest.mark.parametrize(
    ("case", "period", "to_date", "day", "expected"),
    [
        ("daily", {"every": "day"}, None, date(2026, 12, 25), True),
        ("before from_date", {"every": "day"}, None, date(2026, 11, 30), False),
        ("to_date is inclusive", {"every": "day"}, "2026-12-10", date(2026, 12, 10), True),
        ("after to_date", {"every": "day"}, "2026-12-10", date(2026, 12, 11), False),
        ("weekday range hit (Fri)", {"every": "week", "weekdays": "mon-fri"}, None, date(2026, 12, 4), True),
        ("weekday range miss (Sat)", {"every": "week", "weekdays": "mon-fri"}, None, date(2026, 12, 5), False),
        ("weekday list", {"every": "week", "weekdays": [6, 7]}, None, date(2026, 12, 6), True),
        ("day of month", {"every": "month", "days_of_month": [1, 15]}, None, date(2027, 1, 15), True),
        ("other day of month", {"every": "month", "days_of_month": [1, 15]}, None, date(2027, 1, 16), False),
        ("31st skipped in Feb", {"every": "month", "days_of_month": [31]}, None, date(2027, 2, 28), False),
        ("months narrow", {"every": "day", "months": [6, 7, 8]}, None, date(2026, 12, 2), False),
    ],
)
def test_period_and_date_range(
    case: str, period: dict[str, Any], to_date: str | None, day: date, expected: bool
) -> None:
    assert plan(period=period, to_date=to_date).active_on(day) is expected
    assert bool(rounds_due(plan(period=period, to_date=to_date), route(), PLACES, day, SH, always)) is expected


@pytest.mark.parametrize(
    ("case", "starts", "duration", "missing"),
    [
        ("morning and evening", ["08:00", "19:30"], 40, []),
        ("only midday", ["12:00"], 40, ["morning", "evening"]),
        ("round runs into the morning peak", ["06:40"], 30, ["evening"]),
        ("night only", ["23:00"], 60, ["morning", "evening"]),
        ("per guard, together cover both", {"g01": ["07:30"], "g02": ["18:00"]}, 30, []),
    ],
)
def test_starts_spread_over_peaks_p0_1(case: str, starts: Any, duration: int, missing: list[str]) -> None:
    """P0 §1: patrol times spread over morning and evening peaks; a plan missing one is pointed out."""
    assert missing_peaks(plan(starts=starts, duration_min=duration)) == missing


# --- rounds for one day ----------------------------------------------------------------------------


def test_rounds_due_shanghai_wall_clock() -> None:
    """Asia/Shanghai (UTC+8, no DST): 08:00 and 19:30 local are 00:00 and 11:30 UTC; ordered by start, guard."""
    rounds = rounds_due(plan(), route(), PLACES, date(2026, 12, 1), SH, always)
    assert [(r.guard, r.starts_at) for r in rounds] == [
        ("g01", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
        ("g02", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
        ("g01", datetime(2026, 12, 1, 11, 30, tzinfo=UTC)),
        ("g02", datetime(2026, 12, 1, 11, 30, tzinfo=UTC)),
    ]
    first = rounds[0]
    assert first.ends_at - first.starts_at == timedelta(minutes=40)
    assert first.key == ("p_b1", "g01", datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    assert len({r.key for r in rounds}) == len(rounds)


def test_point_windows_absolute() -> None:
    """P1 §2.3: a point is due by the round start + its window's end, or by the round's end without
    one; without make-up its window shuts just after that (a late sign-in is not taken)."""
    r = rounds_due(plan(), route(), PLACES, date(2026, 12, 1), "UTC", always)[0]
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # a UTC site: wall clock = UTC
    assert r.starts_at == start
    windows = {p.checkpoint: (p.opens_at, p.due_at, p.closes_at - p.due_at, p.min_gap_s) for p in r.points}
    assert windows["b1_lobby"] == (start, start + timedelta(minutes=10), NO_MAKEUP_SLACK, 0)
    assert windows["b1_f2"] == (start, start + timedelta(minutes=40), NO_MAKEUP_SLACK, 35)


def test_a_late_point_may_be_made_up_within_the_grace() -> None:
    """P1 §2.3 with `makeup: true`: a point is taken late until its due time plus the plan's grace."""
    r = rounds_due(plan(makeup=True), route(), PLACES, date(2026, 12, 1), "UTC", always)[0]
    lobby = next(p for p in r.points if p.checkpoint == "b1_lobby")
    assert lobby.closes_at - lobby.due_at == timedelta(minutes=5)
    assert [p.checkpoint for p in r.points][-1] == "b1_roof_fan"


def test_round_after_midnight_belongs_to_its_start_day() -> None:
    r = rounds_due(plan(starts=["23:30"], duration_min=60), route(), PLACES, date(2026, 12, 1), SH, always)[0]
    assert r.starts_at == datetime(2026, 12, 1, 23, 30, tzinfo=SH)
    assert r.ends_at == datetime(2026, 12, 2, 0, 30, tzinfo=SH)


def test_only_guards_on_duty_at_the_start() -> None:
    """g02 is on duty only in the evening; g01 only in the morning (asked at each round's start)."""

    def duty(guard: str, at: datetime) -> bool:
        hour = at.astimezone(SH).hour
        return (guard == "g01" and hour < 12) or (guard == "g02" and hour >= 12)

    rounds = rounds_due(plan(), route(), PLACES, date(2026, 12, 1), SH, duty)
    assert [(r.guard, r.starts_at.astimezone(SH).time()) for r in rounds] == [("g01", time(8)), ("g02", time(19, 30))]


def test_shift_plan_takes_everyone_on_duty() -> None:
    on = {"g03", "g05"}
    p = plan(guards=None, shift=True, starts=["09:00"])
    candidates = ["g05", "g04", "g03"]
    rounds = rounds_due(p, route(), PLACES, date(2026, 12, 1), SH, lambda g, _: g in on, shift_guards=candidates)
    assert [r.guard for r in rounds] == ["g03", "g05"]
    assert rounds_due(p, route(), PLACES, date(2026, 12, 1), SH, always) == []  # no candidates given


def test_per_guard_starts() -> None:
    p = plan(starts={"g01": ["07:30"], "g02": ["18:00", "21:00"]}, makeup=True, early_finish=True)
    rounds = rounds_due(p, route(), PLACES, date(2026, 12, 1), SH, always)
    assert [(r.guard, r.starts_at.astimezone(SH).time()) for r in rounds] == [
        ("g01", time(7, 30)),
        ("g02", time(18)),
        ("g02", time(21)),
    ]
    assert all(r.makeup and r.early_finish and r.grace == timedelta(minutes=5) for r in rounds)


def test_rounds_due_is_deterministic() -> None:
    args = (plan(), route(), PLACES, date(2026, 12, 1), SH, always)
    assert rounds_due(*args) == rounds_due(*args)


def test_wrong_route_refused() -> None:
    with pytest.raises(ValueError, match="walks route `b1_day`"):
        rounds_due(plan(), route(code="other"), PLACES, date(2026, 12, 1), SH, always)


def test_cross_check_names_what_refers_to_nothing() -> None:
    narrow = route(points=[{"checkpoint": "b1_lobby", "window": {"from_min": 0, "to_min": 60}}, {"checkpoint": "x"}])
    plans = [plan(), plan(code="p2", route="nope", guards=["g01", "g09"])]
    problems = [str(p) for p in cross_check([narrow], plans, checkpoints=PLACES.keys(), staff={"g01", "g02"})]
    assert problems == [
        "routes[b1_day]: checkpoint `x` is not in `locations:`",
        "plans[p_b1]: window of `b1_lobby` ends at 60 min, after the round's 40 min + 5 min grace: "
        "lengthen the round or the window",
        "plans[p2]: route `nope` is not in `routes:`",
        "plans[p2]: guard `g09` is not in `staff:`",
    ]
    assert cross_check([route()], [plan()], PLACES.keys(), {"g01", "g02"}) == []
