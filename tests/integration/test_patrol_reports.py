"""Patrol reports (issue 8 item 9) through the real API on both databases.

A site of its own, loaded from a site file: two towers, floors, a shop, facility rooms, in two
responsibility areas (A: tower 1 on two routes, B: tower 2). A week of ok and refused sign-ins is
written with KNOWN gaps, and the weekly coverage report must name exactly those (P1 §2.5: every floor
of an area and its facilities on two days of the week; P1 §2.4: shops with their floor). Rounds and
their points are written directly for the statistics per guard and per route, day, week and month.
The week is Monday 2026-03-02 .. Sunday 2026-03-08 in Asia/Shanghai (UTC+8).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.clock import FakeClock
from server.auth import Role
from storage.db import session_factory, transaction
from storage.models import Device, InboundMessage, Location, Round, RoundPoint, SignIn, Site, Staff
from storage.sitefile.load import load_site
from storage.sitefile.parse import parse_site_text
from tests.support.api import make_client, token_for

pytestmark = pytest.mark.integration

SH = ZoneInfo("Asia/Shanghai")
SITE = "rpt"
PATROL, COVERAGE = "/api/v1/reports/patrol", "/api/v1/reports/coverage"
SITE_FILE = """
version: 1
site: {code: rpt, name: {zh: 报表花园, en: Report Gardens}, timezone: Asia/Shanghai}
departments:
  - {code: security, name: {zh: 护管部, en: Security}}
buildings:
  - {code: T1, name: {zh: 1栋, en: Tower 1}, floors_above: 3, floors_below: 1}
  - {code: T2, name: {zh: 2栋, en: Tower 2}, floors_above: 2}
locations:
  - {code: T1-F1, name: {zh: 1栋 1F 走廊, en: Tower 1 1F corridor}, type: floor, building: T1, floor: 1}
  - {code: T1-LOBBY, name: {zh: 1栋 大堂, en: Tower 1 lobby}, type: lobby, building: T1, floor: 1}
  - {code: T1-F2, name: {zh: 1栋 2F 走廊, en: Tower 1 2F corridor}, type: floor, building: T1, floor: 2}
  - {code: T1-F2-S01, name: {zh: 1栋 201 商铺, en: Tower 1 shop 201}, type: shop, building: T1, floor: 2}
  - {code: T1-F3, name: {zh: 1栋 3F 走廊, en: Tower 1 3F corridor}, type: floor, building: T1, floor: 3}
  - {code: T1-F3-PIPE, name: {zh: 1栋 3F 管井房, en: Tower 1 3F pipe well}, type: pipe_well, building: T1, floor: 3}
  - {code: T1-B1-PUMP, name: {zh: 1栋 B1 水泵房, en: Tower 1 B1 pump room}, type: pump_room, building: T1, floor: -1}
  - {code: T2-F1, name: {zh: 2栋 1F 走廊, en: Tower 2 1F corridor}, type: floor, building: T2, floor: 1}
  - {code: T2-F2, name: {zh: 2栋 2F 走廊, en: Tower 2 2F corridor}, type: floor, building: T2, floor: 2}
  - {code: T2-FAN, name: {zh: 2栋 屋顶风机房, en: Tower 2 roof fan room}, type: fan_room, building: T2}
  - {code: T2-ELEV, name: {zh: 2栋 电梯, en: Tower 2 elevator}, type: elevator, building: T2}
staff:
  - {code: G1, name: {zh: 张伟, en: Zhang Wei}, department: security, position: guard}
  - {code: G2, name: {zh: 王磊, en: Wang Lei}, department: security, position: guard}
devices:
  - {code: rdr-1, kind: handheld_reader, name: {zh: 巡更机 1, en: Reader 1}, holder: G1}
routes:
  - code: r-a
    name: {zh: 1栋日巡, en: Tower 1 day round}
    area: A
    points:
      - {checkpoint: T1-F1, order: 1}
      - {checkpoint: T1-F2, order: 2}
      - {checkpoint: T1-F2-S01, order: 3}
      - {checkpoint: T1-F3, order: 4}
  - code: r-a-rooms
    name: {zh: 1栋机房巡查, en: Tower 1 plant rooms}
    area: A
    points: [{checkpoint: T1-B1-PUMP}, {checkpoint: T1-F3-PIPE}, {checkpoint: T1-F3}]
  - code: r-b
    name: {zh: 2栋日巡, en: Tower 2 day round}
    area: B
    points: [{checkpoint: T2-F1}, {checkpoint: T2-F2}, {checkpoint: T2-FAN}, {checkpoint: T2-ELEV}]
"""


def local(day: int, hh: int, mm: int = 0) -> datetime:
    """Shanghai wall time on 2026-03-<day> (1 = the Sunday before the week, 9 = the Monday after), in UTC."""
    return datetime(2026, 3, day, hh, mm, tzinfo=SH).astimezone(UTC)


#: (checkpoint, guard, when, ok): the week's taps with their known gaps.
TAPS: list[tuple[str | None, str, datetime, bool]] = [
    ("T1-F1", "G1", local(2, 9), True),  # floor 1: Mon, Thu
    ("T1-F1", "G1", local(5, 20), True),
    ("T1-LOBBY", "G1", local(3, 9), True),  # on no route: in no area
    ("T1-F2-S01", "G1", local(3, 10), True),  # floor 2 through its shop (P1 §2.4) on Tue ...
    ("T1-F2", "G1", local(6, 10), True),  # ... and its corridor on Fri
    ("T1-F3", "G1", local(4, 9), True),  # floor 3 twice on Wednesday: one day (GAP)
    ("T1-F3", "G1", local(4, 18), True),
    ("T1-F3", "G1", local(6, 11), False),  # refused: does not count
    ("T1-F3", "G1", local(1, 23, 30), True),  # Sunday before the week
    ("T1-F3", "G1", local(9, 0, 10), True),  # Monday after, 00:10 local (still Sunday in UTC)
    ("T1-F3-PIPE", "G1", local(4, 9, 5), True),  # the pipe well on one day only (GAP)
    ("T1-B1-PUMP", "G1", local(2, 10), True),  # the pump room (and floor B1): Mon and Sun 23:30 local
    ("T1-B1-PUMP", "G1", local(8, 23, 30), True),
    (None, "G1", local(3, 11), False),  # an unknown tag
    ("T2-F1", "G2", local(2, 10), True),
    ("T2-F1", "G2", local(4, 10), True),
    ("T2-F2", "G2", local(3, 10), True),  # floor 2 of tower 2 once (GAP) ...
    ("T2-F2", "G2", local(7, 10), False),  # ... a refused tap on Saturday does not make it two
    ("T2-FAN", "G2", local(2, 11), True),
    ("T2-FAN", "G2", local(6, 11), True),
    ("T2-ELEV", "G2", local(5, 8), True),  # the elevator twice on Thursday: one day (GAP)
    ("T2-ELEV", "G2", local(5, 20), True),
]

Result = tuple[str, str, int]  # checkpoint, result, seconds late (for late)
#: (route, area, guard, start, state, points; the plan is "p-<route>"): the rounds behind the statistics.
ROUNDS: list[tuple[str, str, str, datetime, str, list[Result]]] = [
    (
        "r-a",
        "A",
        "G1",
        local(2, 9),
        "completed",
        [("T1-F1", "on_time", 0), ("T1-F2", "late", 120), ("T1-F3", "early", 0)],
    ),
    (
        "r-a",
        "A",
        "G1",
        local(3, 9),
        "incomplete",
        [("T1-F1", "on_time", 0), ("T1-F2", "missed", 0), ("T1-F3", "late", 60)],
    ),
    ("r-b", "B", "G2", local(2, 10), "missed", [("T2-F1", "missed", 0), ("T2-F2", "missed", 0)]),
    ("r-b", "B", "G2", local(3, 10), "completed", [("T2-F1", "on_time", 0), ("T2-F2", "on_time", 0)]),
    ("r-b", "B", "G1", local(4, 10), "in_progress", [("T2-F1", "on_time", 0), ("T2-F2", "pending", 0)]),
    ("r-b", "B", "G2", local(8, 23, 30), "completed", [("T2-F1", "on_time", 0), ("T2-F2", "late", 30)]),  # Sun 23:30
    ("r-b", "B", "G2", local(9, 0, 30), "completed", [("T2-F1", "on_time", 0), ("T2-F2", "on_time", 0)]),  # Mon 00:30
]


@dataclass
class Reports:
    client: TestClient
    headers: dict[str, str]

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, params={"site": SITE, **params}, headers=self.headers)
        assert r.status_code == 200, r.text
        return r


def _signin(
    s: Session,
    site_id: int,
    device_id: int,
    guard_id: int,
    location_id: int | None,
    msg_id: str,
    at: datetime,
    ok: bool = True,
) -> None:
    """A tap's log row and its sign-in, as the gateway stores them."""
    msg = InboundMessage(
        site_id=site_id, device_id=device_id, msg_id=msg_id, kind="tap", device_ts=at, received_at=at, payload="{}"
    )
    s.add(msg)
    s.flush()
    reason = None if ok else "outside_window"
    s.add(
        SignIn(
            message_id=msg.id, site_id=site_id, device_id=device_id, guard_id=guard_id, location_id=location_id,
            tag_uid="04A1B2C3", tapped_at=at, received_at=at, ok=ok, reason=reason,
        )
    )  # fmt: skip


def _write_week(engine: Engine) -> None:
    with transaction(session_factory(engine)) as s:
        load_site(s, parse_site_text(SITE_FILE))
        s.flush()
        site = s.scalars(select(Site).where(Site.code == SITE)).one()
        loc = {c: i for c, i in s.execute(select(Location.code, Location.id).where(Location.site_id == site.id))}
        staff = {c: i for c, i in s.execute(select(Staff.code, Staff.id).where(Staff.site_id == site.id))}
        device = s.scalars(select(Device.id).where(Device.site_id == site.id)).one()
        for n, (code, guard, at, ok) in enumerate(TAPS):
            _signin(s, site.id, device, staff[guard], loc[code] if code else None, f"t-{n}", at, ok)
        for route, area, guard, start, state, points in ROUNDS:
            rnd = Round(
                site_id=site.id,
                plan=f"p-{route}",
                route=route,
                area=area,
                planned_guard_id=staff[guard],
                guard_id=staff[guard],
                starts_at=start,
                ends_at=start + timedelta(hours=1),
                grace_s=600,
                makeup=True,
                early_finish=False,
                state=state,
                created_at=start - timedelta(hours=1),
                alert_comment="已电话联系护管员" if state == "incomplete" else None,
            )
            s.add(rnd)
            s.flush()
            for i, (code, result, late_s) in enumerate(points):
                opens = start + timedelta(minutes=10 * i)
                due = opens + timedelta(minutes=5)
                signed = {"on_time": opens + timedelta(minutes=2), "early": opens - timedelta(minutes=1)}.get(
                    result, due + timedelta(seconds=late_s) if result == "late" else None
                )
                s.add(
                    RoundPoint(
                        round_id=rnd.id,
                        seq=i + 1,
                        checkpoint=code,
                        location_id=loc[code],
                        order=i + 1,
                        opens_at=opens,
                        due_at=due,
                        closes_at=due + timedelta(minutes=10),
                        result=result,
                        signed_at=signed,
                        condition="abnormal" if (code, result) == ("T1-F3", "early") else None,
                    )
                )


@pytest.fixture
def reports(engine: Engine) -> Reports:
    _write_week(engine)
    client = make_client(engine)
    client.app.state.clock = FakeClock(local(5, 12))  # type: ignore[attr-defined]  # Thursday of the week
    return Reports(client, token_for(engine, client, Role.MANAGER))


def _items(area: dict[str, Any], key: str) -> dict[str, list[str]]:
    """Floors by "building floor" or facilities by code → their days."""
    return {(i["checkpoint"] if key == "facilities" else f"{i['building']} {i['floor']}"): i["days"] for i in area[key]}


def test_weekly_coverage_names_exactly_the_known_gaps_p1_2_5(reports: Reports) -> None:
    """P1 §2.5: every floor of an area and its facilities on two days of the week. Known gaps: a floor
    patrolled twice on one day (one day), a floor patrolled once, a facility on one day only (twice),
    while refused taps and taps outside the site's local week do not count."""
    body = reports.get(COVERAGE, week="2026-03-05").json()  # a Thursday: the week is Mon 03-02 .. Sun 03-08
    assert (body["week_start"], body["week_end"], body["required"]) == ("2026-03-02", "2026-03-08", 2)
    assert body["covered"] is False and body["timezone"] == "Asia/Shanghai"
    areas = {a["area"]: a for a in body["areas"]}
    assert set(areas) == {"A", "B"}, "the lobby is on no route, so in no area"
    a, b = areas["A"], areas["B"]
    assert a["routes"] == ["r-a", "r-a-rooms"] and b["routes"] == ["r-b"]
    assert _items(a, "floors") == {
        "T1 -1": ["2026-03-02", "2026-03-08"],  # through the pump room; Sunday 23:30 local is still the week
        "T1 1": ["2026-03-02", "2026-03-05"],
        "T1 2": ["2026-03-03", "2026-03-06"],  # the shop on Tuesday counts for its floor (P1 §2.4)
        "T1 3": ["2026-03-04"],  # twice on Wednesday; the refused Friday tap and the taps outside the week: no
    }
    assert _items(a, "facilities") == {"T1-B1-PUMP": ["2026-03-02", "2026-03-08"], "T1-F3-PIPE": ["2026-03-04"]}
    assert _items(b, "floors") == {"T2 1": ["2026-03-02", "2026-03-04"], "T2 2": ["2026-03-03"]}
    assert _items(b, "facilities") == {"T2-ELEV": ["2026-03-05"], "T2-FAN": ["2026-03-02", "2026-03-06"]}

    def gaps(area: dict[str, Any]) -> list[tuple[str, str, int]]:
        return [(g["kind"], g["label"]["zh"], g["count"]) for g in area["gaps"]]

    assert gaps(a) == [("floor", "1栋 3F", 1), ("facility", "1栋 3F 管井房", 1)]
    assert gaps(b) == [("floor", "2栋 2F", 1), ("facility", "2栋 电梯", 1)]
    assert a["covered"] is False and all(g["covered"] is False for g in a["gaps"])
    assert a["summary"]["zh"] == "2 处未达标：1栋 3F（1 天）、1栋 3F 管井房（1 天）"
    assert b["summary"]["en"] == "2 short: Tower 2 2F (1 day), Tower 2 elevator (1 day)"
    floor3 = next(f for f in a["floors"] if f["floor"] == 3)
    assert (floor3["floor_label"], floor3["label"]["en"], floor3["checkpoint"]) == ("3F", "Tower 1 3F", None)


def test_coverage_weeks_are_the_sites_local_iso_weeks_p1_2_5(reports: Reports) -> None:
    """Any day names its ISO week; the default is this week at the site (the app's clock); the Monday
    00:10 tap (Sunday in UTC) belongs to the next local week, the Sunday 23:30 ones to the one before."""
    assert reports.get(COVERAGE, week="2026-03-08").json()["week_start"] == "2026-03-02"
    assert reports.get(COVERAGE).json()["week_start"] == "2026-03-02"
    nxt = {a["area"]: a for a in reports.get(COVERAGE, week="2026-03-09").json()["areas"]}
    assert _items(nxt["A"], "floors")["T1 3"] == ["2026-03-09"]
    assert sum(f["count"] for f in nxt["A"]["floors"] + nxt["B"]["floors"]) == 1
    before = {a["area"]: a for a in reports.get(COVERAGE, week="2026-02-25").json()["areas"]}
    assert _items(before["A"], "floors")["T1 3"] == ["2026-03-01"]
    assert len(before["A"]["gaps"]) == 6 and before["B"]["summary"]["zh"].startswith("4 处未达标")


def _stats(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[Any, ...]]:
    keys = ("rounds", "completed", "incomplete", "missed", "open", "completion_pct", "late_points", "missed_points")
    return {(r["key"], r["period_start"]): tuple(r[k] for k in (*keys, "lateness_s")) for r in rows}


def test_weekly_stats_per_guard_and_per_route(reports: Reports) -> None:
    """Per guard and per route, per local ISO week: ended rounds, completion mean, late and missed
    points; a round still in progress is only `open`. The Sunday 23:30 round is the old week's, the
    Monday 00:30 one the new week's."""
    body = reports.get(PATROL, period="week", **{"from": "2026-03-02", "to": "2026-03-15"}).json()
    assert body["periods"] == ["2026-03-02", "2026-03-09"] and body["period_name"]["zh"] == "周报"
    assert _stats(body["by_guard"]) == {
        ("G1", "2026-03-02"): (2, 1, 1, 0, 1, 83.3, 2, 1, 180),
        ("G2", "2026-03-02"): (3, 2, 0, 1, 0, 66.7, 1, 2, 30),
        ("G2", "2026-03-09"): (1, 1, 0, 0, 0, 100.0, 0, 0, 0),
    }
    assert _stats(body["by_route"]) == {
        ("r-a", "2026-03-02"): (2, 1, 1, 0, 0, 83.3, 2, 1, 180),
        ("r-b", "2026-03-02"): (3, 2, 0, 1, 1, 66.7, 1, 2, 30),
        ("r-b", "2026-03-09"): (1, 1, 0, 0, 0, 100.0, 0, 0, 0),
    }
    names = {r["key"]: r["name"] for r in body["by_guard"] + body["by_route"]}
    assert names["G1"] == {"zh": "张伟", "en": "Zhang Wei"} and names["r-a"]["zh"] == "1栋日巡"


def test_daily_and_monthly_stats_and_the_default_range(reports: Reports) -> None:
    day = reports.get(PATROL, period="day", **{"from": "2026-03-02", "to": "2026-03-08"}).json()
    assert len(day["periods"]) == 7
    assert _stats(day["by_guard"]) == {
        ("G1", "2026-03-02"): (1, 1, 0, 0, 0, 100.0, 1, 0, 120),
        ("G1", "2026-03-03"): (1, 0, 1, 0, 0, 66.7, 1, 1, 60),
        ("G1", "2026-03-04"): (0, 0, 0, 0, 1, None, 0, 0, 0),
        ("G2", "2026-03-02"): (1, 0, 0, 1, 0, 0.0, 0, 2, 0),
        ("G2", "2026-03-03"): (1, 1, 0, 0, 0, 100.0, 0, 0, 0),
        ("G2", "2026-03-08"): (1, 1, 0, 0, 0, 100.0, 1, 0, 30),
    }, "the Monday 00:30 round is not on Sunday 03-08, though its UTC date is"
    month = reports.get(PATROL, period="month", to="2026-03-31").json()  # from: the start of to's month
    assert (month["from_date"], month["periods"]) == ("2026-03-01", ["2026-03-01"])
    assert _stats(month["by_guard"])[("G2", "2026-03-01")] == (4, 3, 0, 1, 0, 75.0, 1, 2, 30)
    week = reports.get(PATROL).json()  # default: this week so far (the clock says Thursday 03-05)
    assert (week["period"], week["from_date"], week["to_date"]) == ("week", "2026-03-02", "2026-03-05")
    assert _stats(week["by_route"])[("r-b", "2026-03-02")] == (2, 1, 0, 1, 1, 50.0, 0, 2, 0)


def test_csv_has_a_bom_and_zh_headers_and_parses(reports: Reports) -> None:
    r = reports.get(PATROL, period="week", format="csv", **{"from": "2026-03-02", "to": "2026-03-08"})
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="patrol-rpt-week-2026-03-02-2026-03-08.csv"' in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf"), "a UTF-8 BOM, so Excel reads the Chinese right"
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 4  # G1, G2, r-a, r-b in the one week
    g1 = next(row for row in rows if row["编码"] == "G1")
    assert (g1["统计对象"], g1["名称"], g1["周期开始"], g1["完成率(%)"]) == ("巡查员", "张伟", "2026-03-02", "83.3")
    assert (g1["迟到点数"], g1["漏巡点数"], g1["迟到总时长(分钟)"]) == ("2", "1", "3.0")


def test_xlsx_opens_with_zh_headers_and_prints_on_one_page_width(reports: Reports) -> None:
    r = reports.get(PATROL, period="week", format="xlsx", **{"from": "2026-03-02", "to": "2026-03-08"})
    assert r.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["巡查统计", "巡查记录", "覆盖情况"]
    records = wb["巡查记录"]
    rows = list(records.iter_rows(values_only=True))
    assert list(rows[0]) == ["日期", "责任区域", "路线", "巡查员", "巡查点", "计划时间", "签到时间", "结果", "备注"]
    assert len(rows) - 1 == 14, "every point of the six rounds starting in the week"
    late = next(row for row in rows if row[4] == "1栋 2F 走廊" and row[7] == "迟到")
    assert late[:4] == ("2026-03-02", "A", "1栋日巡", "张伟（G1）")
    assert (late[5], late[6]) == ("09:10–09:15", "09:17:00")
    missed = next(row for row in rows if row[7] == "漏巡" and row[1] == "A")
    assert missed[6] in (None, "") and missed[8] == "主管意见：已电话联系护管员"
    assert any(row[7] == "提前" and row[8] == "发现异常" for row in rows)
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2" and ws["A1"].font.b is True
        assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToWidth == 1
        assert ws.sheet_properties.pageSetUpPr.fitToPage is True and ws.column_dimensions["A"].width > 5
    stats_head = [c.value for c in wb["巡查统计"][1]]
    assert stats_head[:4] == ["统计对象", "编码", "名称", "周期开始"] and "完成率(%)" in stats_head
    coverage = list(wb["覆盖情况"].iter_rows(values_only=True))
    assert list(coverage[0]) == ["周起始日", "责任区域", "类别", "位置", "巡查天数", "巡查日期", "结论"]
    short = {(row[1], row[3]) for row in coverage[1:] if str(row[6]).startswith("未达标")}
    assert short == {("A", "1栋 3F"), ("A", "1栋 3F 管井房"), ("B", "2栋 2F"), ("B", "2栋 电梯")}


def test_errors_say_what_to_do_and_roles(reports: Reports, engine: Engine) -> None:
    c, h = reports.client, reports.headers
    r = c.get(PATROL, params={"site": "nowhere"}, headers=h)
    assert r.status_code == 404 and "'nowhere'" in r.json()["detail"] and "/api/v1/sites" in r.json()["detail"]
    assert c.get(COVERAGE, params={"site": "nowhere"}, headers=h).status_code == 404
    r = c.get(PATROL, params={"site": SITE, "from": "2026-03-09", "to": "2026-03-02"}, headers=h)
    assert r.status_code == 422 and "swap them" in r.json()["detail"][0]["msg"]
    r = c.get(PATROL, params={"site": SITE, "from": "2025-01-01", "to": "2026-03-02"}, headers=h)
    assert r.status_code == 422 and "one year at a time" in r.json()["detail"][0]["msg"]
    for bad in ("2026-3-2", "1772409600", "2026-03-02T00:00:00Z", "2026-02-30"):
        r = c.get(COVERAGE, params={"site": SITE, "week": bad}, headers=h)
        assert r.status_code == 422 and "YYYY-MM-DD" in r.text, bad
    r = c.get(COVERAGE, params={"site": SITE, "week": "9999-12-31"}, headers=h)
    assert r.status_code == 422 and "outside the days reports cover" in r.text
    assert c.get(PATROL, params={"site": SITE, "period": "year"}, headers=h).status_code == 422
    assert c.get(PATROL, params={"site": SITE, "format": "pdf"}, headers=h).status_code == 422
    assert c.get(PATROL, params={"site": SITE}).status_code == 401
    for role, code in [(Role.GUARD, 403), (Role.CONTROL_ROOM, 403), (Role.ENGINEER, 403), (Role.SUPERVISOR, 200)]:
        headers = token_for(engine, c, role)
        assert c.get(COVERAGE, params={"site": SITE}, headers=headers).status_code == code, role
        assert c.get(PATROL, params={"site": SITE}, headers=headers).status_code == code, role


def test_an_area_fully_patrolled_is_covered(reports: Reports, engine: Engine) -> None:
    """P1 §2.5 met: after a second day at each of area B's gaps, area B is covered and names no gap."""
    with transaction(session_factory(engine)) as s:
        site_id = s.scalars(select(Site.id).where(Site.code == SITE)).one()
        device = s.scalars(select(Device.id).where(Device.site_id == site_id)).one()
        guard = s.scalars(select(Staff.id).where(Staff.site_id == site_id, Staff.code == "G2")).one()
        for n, code in enumerate(("T2-F2", "T2-ELEV")):
            location = s.scalars(select(Location.id).where(Location.site_id == site_id, Location.code == code)).one()
            _signin(s, site_id, device, guard, location, f"x-{n}", local(7, 15 + n))
    areas = {a["area"]: a for a in reports.get(COVERAGE, week=date(2026, 3, 2).isoformat()).json()["areas"]}
    assert areas["B"]["covered"] is True and areas["B"]["gaps"] == []
    assert areas["B"]["summary"]["en"] == "all patrolled on 2+ days" and areas["A"]["covered"] is False
