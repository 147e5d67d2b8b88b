"""What the patrol report endpoints return (issue 8 item 9; P1 §2.4, P1 §2.5): round statistics per
guard and per route, and the weekly coverage of each responsibility area 责任区域."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from core.outbound import Name


class RoundStatsPublic(BaseModel):
    """One guard's or one route's rounds in one period (巡查统计); see core.coverage.RoundStats."""

    key: str = Field(description="the guard's staff code or the route's code")
    name: Name
    period_start: date
    rounds: int = Field(description="ended rounds: completed + incomplete + missed")
    completed: int
    incomplete: int
    missed: int
    open: int = Field(description="rounds still scheduled or in progress, counted nowhere else")
    completion_pct: float | None = Field(description="mean over the ended rounds, one decimal; null when none ended")
    late_points: int
    missed_points: int
    lateness_s: int = Field(description="total seconds late over the late sign-ins")


class PatrolReportPublic(BaseModel):
    """Rounds that start on a local day from `from_date` to `to_date` (inclusive), per period."""

    site: str
    site_name: Name
    timezone: str
    period: Literal["day", "week", "month"]
    period_name: Name
    from_date: date
    to_date: date
    periods: list[date] = Field(description="the first day of every period that meets the range")
    by_guard: list[RoundStatsPublic]
    by_route: list[RoundStatsPublic]


class CoverageItemPublic(BaseModel):
    """A floor (`checkpoint` null) or a facility of an area, and the local days it was patrolled."""

    kind: Literal["floor", "facility"]
    label: Name
    building: str | None
    floor: int | None
    floor_label: str | None
    checkpoint: str | None
    days: list[date]
    count: int = Field(description="distinct local days with an ok sign-in")
    covered: bool


class AreaCoveragePublic(BaseModel):
    """One responsibility area's week (P1 §2.5); `gaps` repeats the floors and facilities that fell short."""

    area: str
    routes: list[str]
    covered: bool
    floors: list[CoverageItemPublic]
    facilities: list[CoverageItemPublic]
    gaps: list[CoverageItemPublic]
    summary: Name


class CoverageReportPublic(BaseModel):
    """Every floor of each responsibility area and its facilities, patrolled on `required` days of the
    ISO week (P1 §2.5); shops count with their floor (P1 §2.4); refused sign-ins do not count."""

    site: str
    site_name: Name
    timezone: str
    week_start: date
    week_end: date = Field(description="the Sunday that ends the week")
    required: int
    covered: bool
    areas: list[AreaCoveragePublic]
