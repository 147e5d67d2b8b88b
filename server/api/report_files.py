"""The patrol report as files a manager opens and prints: CSV (UTF-8 with a BOM, so Excel reads the
Chinese right) and an Excel workbook of three sheets (巡查统计, 巡查记录, 覆盖情况) with zh-CN headers,
bold frozen header rows repeated on every page, A4 landscape, fitted to the page's width."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.styles import Alignment, Font  # type: ignore[import-untyped]

from core.coverage import PERIOD_TEXT, REQUIRED_DAYS, AreaCoverage
from storage.patrol_reports import PatrolReport, Places

Sheet = tuple[str, list[str], list[int]]

#: Each sheet: its title, its zh-CN headers and column widths (characters), so it prints on one page's width.
STATS: Sheet = (
    "巡查统计",
    [
        "统计对象",
        "编码",
        "名称",
        "周期开始",
        "已结束轮次",
        "完成",
        "部分完成",
        "漏巡轮次",
        "未结束轮次",
        "完成率(%)",
        "迟到点数",
        "漏巡点数",
        "迟到总时长(分钟)",
    ],
    [8, 10, 14, 11, 10, 6, 8, 8, 10, 10, 8, 8, 14],
)
RECORDS: Sheet = (
    "巡查记录",
    ["日期", "责任区域", "路线", "巡查员", "巡查点", "计划时间", "签到时间", "结果", "备注"],
    [11, 10, 16, 14, 24, 13, 10, 7, 30],
)
COVERAGE: Sheet = (
    "覆盖情况",
    ["周起始日", "责任区域", "类别", "位置", "巡查天数", "巡查日期", "结论"],
    [11, 10, 6, 24, 8, 40, 18],
)
RESULT_ZH = {"pending": "待巡", "early": "提前", "on_time": "准时", "late": "迟到", "missed": "漏巡"}
BY_ZH = {"guard": "巡查员", "route": "路线"}


def _stats_rows(report: PatrolReport) -> list[list[Any]]:
    return [
        [
            BY_ZH[s.by],
            s.key,
            report.name_of(s).zh,
            s.period_start.isoformat(),
            s.rounds,
            s.completed,
            s.incomplete,
            s.missed,
            s.open,
            "" if s.completion_pct is None else s.completion_pct,
            s.late_points,
            s.missed_points,
            round(s.lateness_s / 60, 1),
        ]
        for s in report.by("guard") + report.by("route")
    ]


def patrol_csv(report: PatrolReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([STATS[1], *_stats_rows(report)])
    return "\ufeff".encode() + out.getvalue().encode("utf-8")  # the BOM: Excel then reads UTF-8 Chinese right


def _record_rows(report: PatrolReport, places: Places) -> list[list[Any]]:
    tz, rows = report.site.tz, []
    for rec in report.rounds:
        rnd = rec.round
        for p in rnd.points:
            notes = ["发现异常" if p.condition == "abnormal" else ""]
            if p.result == "missed":
                notes += [f"提前结束：{rec.finish_reason}" if rec.finish_reason else ""]
                notes += [f"主管意见：{rec.alert_comment}" if rec.alert_comment else ""]
            rows.append(
                [
                    rnd.starts_at.astimezone(tz).date().isoformat(),
                    rec.area,
                    report.site.route_name(rec.route).zh,
                    f"{rec.guard_name.zh}（{rnd.guard}）",
                    places.name(p.code).zh,
                    f"{p.opens_at.astimezone(tz):%H:%M}–{p.due_at.astimezone(tz):%H:%M}",
                    f"{p.signed_at.astimezone(tz):%H:%M:%S}" if p.signed_at else "",
                    RESULT_ZH.get(p.result, p.result),
                    "；".join(n for n in notes if n),
                ]
            )
    return rows


def _coverage_rows(weeks: list[tuple[date, AreaCoverage]], places: Places) -> list[list[Any]]:
    return [
        [
            monday.isoformat(),
            area.area,
            "楼层" if item.checkpoint is None else "设施",
            places.label(item).zh,
            item.count,
            "、".join(d.isoformat() for d in item.days),
            "达标" if item.covered else f"未达标（还差 {item.required - item.count} 天）",
        ]
        for monday, area in weeks
        for item in area.floors + area.facilities
    ]


def _sheet(wb: Workbook, sheet: Sheet, rows: list[list[Any]], header: str) -> None:
    title, head, widths = sheet
    ws = wb.create_sheet(title)
    ws.append(head)
    for row in rows:
        ws.append(row)
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = width
    ws.freeze_panes = "A2"
    ws.print_title_rows = "1:1"  # the headers on every printed page
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as it takes
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.oddHeader.center.text = header
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"


def patrol_xlsx(report: PatrolReport, weeks: list[tuple[date, AreaCoverage]], places: Places) -> bytes:
    span = f"{report.site.name.zh} {report.start} 至 {report.end}"
    wb = Workbook()
    wb.remove(wb.active)
    _sheet(wb, STATS, _stats_rows(report), f"{span} 巡查统计（{PERIOD_TEXT[report.period].zh}）")
    _sheet(wb, RECORDS, _record_rows(report, places), f"{span} 巡查记录")
    _sheet(wb, COVERAGE, _coverage_rows(weeks, places), f"{span} 楼层及设施每周巡查覆盖（不少于 {REQUIRED_DAYS} 天）")
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
