"""Patrol coverage and round statistics (core/coverage.py): P1 §2.5 every floor of a responsibility area
and its facilities twice a week (two distinct local days), P1 §2.4 shops count with their floor.
The week is Monday 2026-03-02 .. Sunday 2026-03-08 in Asia/Shanghai (UTC+8)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.coverage import (
    AreaCheckpoint,
    RoundStats,
    RouteRound,
    SignedVisit,
    period_start,
    periods,
    round_stats,
    week_of,
    weekly_coverage,
)
from core.rounds import Point, PointResult, Round, RoundState

SH = ZoneInfo("Asia/Shanghai")
WEEK = date(2026, 3, 2)  # a Monday

POINTS = [
    AreaCheckpoint("A1", "F1", "B1", 1, "floor"),
    AreaCheckpoint("A1", "PUMP", "B1", 1, "pump_room"),
    AreaCheckpoint("A1", "F2", "B1", 2, "floor"),
    AreaCheckpoint("A1", "SH2", "B1", 2, "shop"),
    AreaCheckpoint("A1", "F3", "B1", 3, "floor"),
    AreaCheckpoint("A1", "F4", "B1", 4, "floor"),
    AreaCheckpoint("A1", "FAN", "B1", None, "fan_room"),  # on the roof: a facility, no floor
    AreaCheckpoint("A2", "G1", "B2", 1, "floor"),
    AreaCheckpoint("A2", "ELEV", None, None, "elevator"),
]


def local(day: int, hh: int, mm: int = 0) -> datetime:
    """Shanghai wall time on 2026-03-<day> (day 1 = the Sunday before the week, 9 = the Monday after)."""
    return datetime(2026, 3, day, hh, mm, tzinfo=SH)


def visit(code: str, at: datetime, ok: bool = True) -> SignedVisit:
    return SignedVisit(code, "g1", at.astimezone(UTC), ok)


WEEK_VISITS = [
    visit("F1", local(2, 9)),  # Mon
    visit("F1", local(5, 20)),  # Thu
    visit("PUMP", local(2, 10)),
    visit("PUMP", local(8, 23, 30)),  # Sun 23:30 local: still this week
    visit("SH2", local(3, 10)),  # floor 2 through its shop (P1 §2.4)
    visit("F2", local(6, 10)),
    visit("F3", local(4, 9)),  # twice on Wednesday: one day
    visit("F3", local(4, 18)),
    visit("F4", local(2, 9)),
    visit("F4", local(5, 9), ok=False),  # a failed sign-in does not count
    visit("FAN", local(2, 8)),
    visit("FAN", local(9, 0, 10)),  # Mon 00:10 local: the next week
    visit("FAN", local(1, 23, 59)),  # the Sunday before
    visit("G1", local(3, 7)),
    visit("G1", local(7, 7)),
    visit("ZZ", local(3, 7)),  # not a checkpoint of any area
]


def test_p1_2_5_week_with_known_gaps() -> None:
    """P1 §2.5: exactly floors B1/3 (one day, twice) and B1/4 (failed second sign-in) and the roof fan
    room are short in A1; floor 2 is covered through its shop (P1 §2.4); A2 misses its elevator."""
    cov = weekly_coverage(POINTS, WEEK_VISITS, WEEK, SH)
    assert sorted(cov) == ["A1", "A2"]
    a1, a2 = cov["A1"], cov["A2"]
    gaps = [(g.building, g.floor, g.checkpoint, g.count) for g in a1.gaps]
    assert gaps == [("B1", 3, None, 1), ("B1", 4, None, 1), ("B1", None, "FAN", 1)]
    assert not a1.covered
    floors = {(f.building, f.floor): f.days for f in a1.floors}
    assert floors == {
        ("B1", 1): (date(2026, 3, 2), date(2026, 3, 5), date(2026, 3, 8)),  # the pump room is on floor 1
        ("B1", 2): (date(2026, 3, 3), date(2026, 3, 6)),
        ("B1", 3): (date(2026, 3, 4),),
        ("B1", 4): (date(2026, 3, 2),),
    }
    assert [(f.checkpoint, f.covered) for f in a1.facilities] == [("FAN", False), ("PUMP", True)]
    assert [(g.checkpoint, g.count) for g in a2.gaps] == [("ELEV", 0)]
    assert [(f.floor, f.covered) for f in a2.floors] == [(1, True)]
    assert a1.gaps[0].label().zh == "B1 栋 3 层" and a1.gaps[2].label().en == "facility FAN"


@pytest.mark.parametrize(
    ("at", "counted"),
    [
        (local(8, 23, 30), True),  # Sunday 23:30 local = 15:30 UTC: this week
        (local(9, 0, 10), False),  # Monday 00:10 local = Sunday 16:10 UTC: the next week
        (local(2, 0, 10), True),  # Monday 00:10 local of this week = Sunday 16:10 UTC before it
        (local(1, 23, 59), False),  # the Sunday before, local
    ],
)
def test_p1_2_5_week_boundaries_are_local(at: datetime, counted: bool) -> None:
    """P1 §2.5: the week is the site's local Monday–Sunday, whatever the UTC date of the sign-in."""
    cov = weekly_coverage(POINTS, [visit("F1", at)], WEEK, SH)["A1"]
    assert cov.floors[0].count == (1 if counted else 0)


@pytest.mark.parametrize(
    ("times", "days", "covered"),
    [
        ([local(3, 9), local(3, 9, 5)], 1, False),  # a double tap: one day
        ([local(3, 9), local(3, 21), local(3, 23)], 1, False),  # three sign-ins on one day: still one
        ([local(3, 9), local(6, 9)], 2, True),  # two days
        ([local(3, 23, 50), local(4, 0, 10)], 2, True),  # across local midnight: two days
    ],
)
def test_p1_2_5_twice_a_week_means_two_distinct_days(times: list[datetime], days: int, covered: bool) -> None:
    """P1 §2.5 "twice a week" is two distinct local days, not two sign-ins."""
    item = weekly_coverage(POINTS, [visit("F3", t) for t in times], WEEK, SH)["A1"].floors[2]
    assert (item.floor, item.count, item.covered) == (3, days, covered)


def test_required_is_a_parameter_and_week_start_must_be_a_monday() -> None:
    cov = weekly_coverage(POINTS, [visit("G1", local(3, 9))], WEEK, SH, required=1)["A2"]
    assert cov.floors[0].covered and not cov.facilities[0].covered
    with pytest.raises(ValueError, match="not a Monday"):
        weekly_coverage(POINTS, [], WEEK + timedelta(days=1), SH)
    with pytest.raises(ValueError, match="naive"):
        weekly_coverage(POINTS, [SignedVisit("F1", "g1", datetime(2026, 3, 3, 9), True)], WEEK, SH)
    assert week_of(date(2026, 3, 8)) == WEEK


# --- round statistics -------------------------------------------------------------------------------


def make_round(rid: int, guard: str, start: datetime, state: RoundState, *results: PointResult) -> Round:
    """A round of 10-minute points; a `late` point is signed 5 min after its due time."""
    points = []
    for i, res in enumerate(results):
        due = start + timedelta(minutes=10 * (i + 1))
        signed_at = {"on_time": due, "early": due - timedelta(minutes=10), "late": due + timedelta(minutes=5)}.get(res)
        opens, closes = due - timedelta(minutes=10), due + timedelta(minutes=30)
        points.append(Point(f"P{i}", 0, opens, due, closes, 0, res, signed_at))
    return Round(rid, guard, start, start + timedelta(hours=1), 600, True, state, tuple(points))


ROUNDS = [
    RouteRound("R1", make_round(1, "g1", local(2, 8), "completed", "on_time", "late")),
    RouteRound("R1", make_round(2, "g1", local(2, 18), "incomplete", "late", "missed")),
    RouteRound("R2", make_round(3, "g1", local(3, 8), "missed", "missed", "missed")),
    RouteRound("R1", make_round(4, "g2", local(3, 8), "in_progress", "on_time", "pending")),
    RouteRound("R1", make_round(5, "g2", local(9, 0, 30), "completed", "early", "on_time")),  # next week (local)
]


def row(stats: list[RoundStats], by: str, key: str, start: date) -> tuple[object, ...]:
    s = next(s for s in stats if (s.by, s.key, s.period_start) == (by, key, start))
    return (s.rounds, s.completed, s.incomplete, s.missed, s.open, s.completion_pct, s.late_points,
            s.missed_points, s.lateness_s)  # fmt: skip


@pytest.mark.parametrize(
    ("period", "by", "key", "start", "expected"),
    [
        # rounds, completed, incomplete, missed, open, completion %, late, missed points, lateness s
        ("day", "guard", "g1", date(2026, 3, 2), (2, 1, 1, 0, 0, 75.0, 2, 1, 600)),
        ("day", "guard", "g1", date(2026, 3, 3), (1, 0, 0, 1, 0, 0.0, 0, 2, 0)),
        ("day", "guard", "g2", date(2026, 3, 3), (0, 0, 0, 0, 1, None, 0, 0, 0)),  # open rounds only
        ("week", "guard", "g1", WEEK, (3, 1, 1, 1, 0, 50.0, 2, 3, 600)),
        ("week", "route", "R1", WEEK, (2, 1, 1, 0, 1, 75.0, 2, 1, 600)),
        ("week", "route", "R1", date(2026, 3, 9), (1, 1, 0, 0, 0, 100.0, 0, 0, 0)),  # 00:30 Monday local
        ("week", "route", "R2", WEEK, (1, 0, 0, 1, 0, 0.0, 0, 2, 0)),
        ("month", "route", "R1", date(2026, 3, 1), (3, 2, 1, 0, 1, 83.3, 2, 1, 600)),
    ],
)
def test_round_stats_per_guard_and_route(
    period: str, by: str, key: str, start: date, expected: tuple[object, ...]
) -> None:
    """Per guard and per route, daily / weekly / monthly (issue 8 item 9); only ended rounds are done."""
    stats = round_stats(ROUNDS, period, SH)  # type: ignore[arg-type]
    assert row(stats, by, key, start) == expected


def test_round_stats_groups_are_exactly_the_periods_with_rounds() -> None:
    keys = [(s.by, s.key, s.period_start) for s in round_stats(ROUNDS, "week", SH)]
    assert keys == [
        ("guard", "g1", WEEK),
        ("guard", "g2", WEEK),
        ("guard", "g2", date(2026, 3, 9)),
        ("route", "R1", WEEK),
        ("route", "R1", date(2026, 3, 9)),
        ("route", "R2", WEEK),
    ]


@pytest.mark.parametrize(
    ("start", "end", "period", "expected"),
    [
        (date(2026, 3, 2), date(2026, 3, 4), "day", [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]),
        (date(2026, 3, 4), date(2026, 3, 16), "week", [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16)]),
        (date(2025, 11, 30), date(2026, 1, 1), "month", [date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1)]),
        (date(2026, 3, 4), date(2026, 3, 3), "day", []),
    ],
)
def test_periods(start: date, end: date, period: str, expected: list[date]) -> None:
    assert periods(start, end, period) == expected  # type: ignore[arg-type]
    assert all(period_start(d, period) == d for d in expected)  # type: ignore[arg-type]
