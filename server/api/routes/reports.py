"""Patrol reports (issue 8 item 9): round statistics per guard and per route (daily, weekly, monthly)
as JSON, CSV or a printable Excel workbook with the 巡查记录, and the weekly coverage of every
responsibility area (P1 §2.5 every floor and its facilities on two days of the week; P1 §2.4 shops
with their floor). Days are the site's local calendar days. Roles: supervisor, manager, admin.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import PlainValidator
from sqlalchemy.orm import Session

from core.coverage import (
    PERIOD_TEXT,
    REQUIRED_DAYS,
    AreaCoverage,
    CoverageItem,
    RoundStats,
    period_start,
    periods,
    week_of,
)
from core.outbound import Name
from core.procedures import Text
from server.api.deps import SessionDep, require_roles
from server.api.incident_schemas import NO_NUL
from server.api.report_files import patrol_csv, patrol_xlsx
from server.api.report_schemas import (
    AreaCoveragePublic,
    CoverageItemPublic,
    CoverageReportPublic,
    PatrolReportPublic,
    RoundStatsPublic,
)
from server.api.routes.tickets import Now
from server.auth import Role
from storage.patrol_reports import PatrolReport, Places, ReportSite, coverage_weeks, find_site, load_places
from storage.patrol_reports import patrol_report as load_report

READERS = Depends(require_roles(Role.SUPERVISOR, Role.MANAGER))
router = APIRouter(prefix="/api/v1/reports", tags=["reports"], dependencies=[READERS])
ROLES = "Roles: supervisor, manager, admin"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: The days a report may name, and the longest range: a year of daily lines is already a long print.
EARLIEST, LATEST, MAX_DAYS = date(2000, 1, 1), date(2999, 12, 31), 366
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(value: object) -> date | None:
    """A plain YYYY-MM-DD (the site's local day); numbers and times are refused, not guessed."""
    if value is None or isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if _DAY.match(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a day: write it as YYYY-MM-DD, e.g. 2026-03-02")


Day = Annotated[date | None, PlainValidator(_day, json_schema_input_type=date | None)]
SiteCode = Annotated[str, Query(min_length=1, max_length=64, pattern=NO_NUL, description="the site's code")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such site (GET /api/v1/sites lists them)"}}
FILES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, or with `format=csv` a UTF-8 CSV (with BOM), with `format=xlsx` an Excel workbook",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **NOT_FOUND,
}


def _site(session: Session, code: str) -> ReportSite:
    site = find_site(session, code)
    if site is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {code!r}: GET /api/v1/sites lists them")
    return site


def _refuse(name: str, value: date, msg: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own (the documented HTTPValidationError)."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": msg, "input": str(value)}])


def _in_calendar(name: str, day: date) -> date:
    if not EARLIEST <= day <= LATEST:
        raise _refuse(name, day, f"{day} is outside the days reports cover ({EARLIEST} to {LATEST})")
    return day


@router.get(
    "/patrol",
    response_model=PatrolReportPublic,
    responses=FILES,
    summary=f"Round statistics per guard and per route, per day, week or month, as JSON, CSV or Excel. {ROLES}",
)
def patrol_report(
    session: SessionDep,
    at: Now,
    site: SiteCode,
    period: Literal["day", "week", "month"] = "week",
    from_: Annotated[Day, Query(alias="from", description="first local day (default: the period of `to`)")] = None,
    to: Annotated[Day, Query(description="last local day, inclusive (default: today at the site)")] = None,
    format_: Annotated[Literal["json", "csv", "xlsx"], Query(alias="format")] = "json",
) -> PatrolReportPublic | Response:
    """Rounds that start on a local day from `from` to `to` (a span of at most 366 days). A round counts
    once it has ended (completed, incomplete, missed); `open` counts those still scheduled or running.
    The Excel workbook adds the 巡查记录 (every point of every round) and the weekly coverage (P1 §2.5)."""
    found = _site(session, site)
    last = _in_calendar("to", to or at.astimezone(found.tz).date())
    first = _in_calendar("from", from_ or period_start(last, period))
    if first > last:
        raise _refuse("from", first, f"from ({first}) is after to ({last}): swap them")
    if (last - first).days >= MAX_DAYS:
        raise _refuse("to", last, f"{first} to {last} is longer than {MAX_DAYS} days: ask for one year at a time")
    report = load_report(session, found, period, first, last)
    name = f"patrol-{found.code}-{period}-{first}-{last}"
    if format_ == "csv":
        return _file(patrol_csv(report), "text/csv; charset=utf-8", f"{name}.csv")
    if format_ == "xlsx":
        places = load_places(session, found.id)
        weeks = coverage_weeks(session, found, places, first, last)
        return _file(
            patrol_xlsx(report, [(w.week_start, a) for w in weeks for a in w.areas.values()], places),
            XLSX,
            f"{name}.xlsx",
        )
    return PatrolReportPublic(
        site=found.code,
        site_name=_name(found.name),
        timezone=found.timezone,
        period=period,
        period_name=_name(PERIOD_TEXT[period]),
        from_date=first,
        to_date=last,
        periods=periods(first, last, period),
        by_guard=[_stats(report, s) for s in report.by("guard")],
        by_route=[_stats(report, s) for s in report.by("route")],
    )


@router.get(
    "/coverage",
    response_model=CoverageReportPublic,
    responses=NOT_FOUND,
    summary=f"Weekly coverage per responsibility area: every floor and its facilities on two days (P1 §2.5). {ROLES}",
)
def coverage_report(
    session: SessionDep,
    at: Now,
    site: SiteCode,
    week: Annotated[Day, Query(description="any local day of the ISO week (default: this week)")] = None,
) -> CoverageReportPublic:
    """Per area its floors (shops count with their floor, P1 §2.4) and facilities, the local days each
    had an ok sign-in (refused ones do not count), and the gaps: those patrolled on fewer than two days."""
    found = _site(session, site)
    monday = week_of(_in_calendar("week", week or at.astimezone(found.tz).date()))
    places = load_places(session, found.id)
    [wk] = coverage_weeks(session, found, places, monday, monday)
    areas = [_area(a, wk.routes.get(a.area, ()), places) for a in wk.areas.values()]
    return CoverageReportPublic(
        site=found.code,
        site_name=_name(found.name),
        timezone=found.timezone,
        week_start=monday,
        week_end=monday + timedelta(days=6),
        required=REQUIRED_DAYS,
        covered=all(a.covered for a in areas),
        areas=areas,
    )


# --- JSON -------------------------------------------------------------------------------------------


def _name(text: Text) -> Name:
    return Name(zh=text.zh, en=text.en)


def _stats(report: PatrolReport, s: RoundStats) -> RoundStatsPublic:
    fields = {k: getattr(s, k) for k in RoundStatsPublic.model_fields if k != "name"}
    return RoundStatsPublic(**fields, name=_name(report.name_of(s)))


def _item(item: CoverageItem, places: Places) -> CoverageItemPublic:
    return CoverageItemPublic(
        kind="floor" if item.checkpoint is None else "facility",
        label=_name(places.label(item)),
        building=item.building,
        floor=item.floor,
        floor_label=places.floor_label(item.building, item.floor),
        checkpoint=item.checkpoint,
        days=list(item.days),
        count=item.count,
        covered=item.covered,
    )


def _summary(area: AreaCoverage, places: Places) -> Name:
    if area.covered:
        return Name(zh=f"全部达标（每处本周巡查 ≥ {area.required} 天）", en=f"all patrolled on {area.required}+ days")
    gaps = [(places.label(g), g.count) for g in area.gaps]
    return Name(
        zh=f"{len(gaps)} 处未达标：" + "、".join(f"{t.zh}（{n} 天）" for t, n in gaps),
        en=f"{len(gaps)} short: " + ", ".join(f"{t.en} ({n} day{'s' * (n != 1)})" for t, n in gaps),
    )


def _area(area: AreaCoverage, routes: tuple[str, ...], places: Places) -> AreaCoveragePublic:
    return AreaCoveragePublic(
        area=area.area,
        routes=list(routes),
        covered=area.covered,
        floors=[_item(i, places) for i in area.floors],
        facilities=[_item(i, places) for i in area.facilities],
        gaps=[_item(i, places) for i in area.gaps],
        summary=_summary(area, places),
    )


def _file(body: bytes, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
