"""The demo's walking guards (devices/patrol_walker.py) and the demo site's routes and plans (issue 8
item 11): the taps of a round keep the walking gaps, each slip gets its verdict from core.rounds, the
walker is driven by the caller's clock, and the demo site has a round starting every few minutes."""

from __future__ import annotations

import itertools
import json
import random
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from core.patrol_plans import Place, RoundSpec, missing_peaks, rounds_due
from core.rounds import Point, Round, Verdict, close_due, judge_all
from core.rounds import Tap as JudgedTap
from devices.findings_reporter import ApiLogin, FindingReport, FindingsReporter, multipart, tiny_png
from devices.patrol_walker import (
    FOUND_AT,
    HONEST,
    MARGIN_S,
    NOTES,
    MistakeRates,
    PatrolWalker,
    Walk,
    walk_round,
)
from devices.simulator import SiteSimulator
from storage.rounds import duty_check
from storage.sitefile.schema import SiteFile

TZ = "Asia/Shanghai"
DAY = date(2026, 11, 30)  # a Monday: the twice-weekly plan runs too
START = datetime(2026, 11, 30, 2, 7, 13, tzinfo=UTC)  # 10:07:13 in 荔园


def _places(site: SiteFile) -> dict[str, Place]:
    return {loc.code: Place(loc.building, loc.floor) for loc in site.locations}


def _rounds(site: SiteFile, day: date = DAY) -> list[RoundSpec]:
    routes = {r.code: r for r in site.routes}
    staff = {s.code: (s.department, s.position) for s in site.staff}
    duty = duty_check(site.roster.shifts(staff), TZ)
    return [r for p in site.plans for r in rounds_due(p, routes[p.route], _places(site), day, TZ, duty)]


def _uids(site: SiteFile) -> dict[str, str]:
    return {loc.code: loc.tag for loc in site.locations if loc.tag}


def _judged(spec: RoundSpec, walk: Walk, site: SiteFile) -> tuple[Round, list[Verdict]]:
    """The round as the gateway holds it (due at its end, open for the grace period with makeup),
    judged on the walk's taps."""
    shut = spec.grace if spec.makeup else timedelta(milliseconds=1)
    points = tuple(
        Point(p.checkpoint, p.order, p.opens_at, spec.ends_at, spec.ends_at + shut, p.min_gap_s) for p in spec.points
    )
    rnd = Round(
        1, spec.guard, spec.starts_at, spec.ends_at, int(spec.grace.total_seconds()), spec.makeup, points=points
    )
    by_uid = {uid: code for code, uid in _uids(site).items()}
    return judge_all(rnd, [JudgedTap(by_uid.get(t.uid), t.at) for t in walk.taps])


def _round(site: SiteFile, plan: str, makeup: bool = True) -> RoundSpec:
    spec = next(r for r in _rounds(site) if r.plan == plan)
    return replace(spec, makeup=makeup)


# ----------------------------------------------------------------------------- the demo site


def test_every_plan_walks_a_route_and_every_area_has_routes(patrol_site: SiteFile) -> None:
    routes = {r.code: r for r in patrol_site.routes}
    assert all(p.route in routes for p in patrol_site.plans)
    areas = {r.area for r in patrol_site.routes}
    assert {b.code for b in patrol_site.buildings} | {"parking", "gates", "green"} <= areas
    assert all(any(p.route == r.code for p in patrol_site.plans) for r in patrol_site.routes)
    tags = _uids(patrol_site)
    assert all(6 <= len(r.points) <= 15 and all(p.checkpoint in tags for p in r.points) for r in routes.values())
    walked = {p.checkpoint for r in routes.values() for p in r.points}
    must = {"shop", "gate", "green_area", "parking", "machine_room", "fan_room", "telecom_room"}  # P1 §2.4, §2.9
    assert {loc.code for loc in patrol_site.locations if loc.type in must and loc.tag} <= walked
    assert any(p.order == 0 for r in routes.values() for p in r.points)  # a few any-order points


def test_shops_come_right_after_their_floor(patrol_site: SiteFile) -> None:
    """P1 §2.4: walking the floors route, a shop follows the floor it is on (or another shop of it)."""
    floor_of = {loc.code: loc.floor for loc in patrol_site.locations}
    kinds = {loc.code: loc.type for loc in patrol_site.locations}
    for route in patrol_site.routes:
        seq = [p.checkpoint for p in route.sequence() if p.order]
        for before, shop in itertools.pairwise(seq):
            if kinds[shop] == "shop":
                below, here = floor_of[before], floor_of[shop]
                assert below is not None and here is not None and here - below in (0, 1)


def test_rounds_start_every_few_minutes_around_the_clock_and_each_guard_walks_one_at_a_time(
    patrol_site: SiteFile,
) -> None:
    rounds = sorted(_rounds(patrol_site), key=lambda r: r.starts_at)
    starts = [r.starts_at for r in rounds]
    assert max(b - a for a, b in itertools.pairwise(starts)) <= timedelta(minutes=10)
    assert starts[0] - datetime(2026, 11, 29, 16, 0, tzinfo=UTC) <= timedelta(minutes=10)  # from local midnight
    readers = {d.holder for d in patrol_site.devices if d.kind == "handheld_reader"}
    staff = {s.code: (s.department, s.position) for s in patrol_site.staff}
    duty = duty_check(patrol_site.roster.shifts(staff), TZ)
    for guard, own in itertools.groupby(sorted(rounds, key=lambda r: (r.guard, r.starts_at)), key=lambda r: r.guard):
        mine = list(own)
        assert guard in readers
        assert all(a.ends_at + a.grace <= b.starts_at for a, b in itertools.pairwise(mine))
        assert all(duty(guard, r.ends_at + r.grace - timedelta(seconds=1)) for r in mine)  # whole round on duty
    peaks = Counter(k for p in patrol_site.plans for k in ("morning", "evening") if k not in missing_peaks(p))
    assert peaks["morning"] >= 12 and peaks["evening"] >= 12  # P0 §1


# ----------------------------------------------------------------------------- one round


def test_an_honest_walk_keeps_every_gap_and_is_signed_on_time(patrol_site: SiteFile) -> None:
    for spec in (_round(patrol_site, "b4-floors-hourly"), _round(patrol_site, "gates-hourly")):
        walk = walk_round(spec, _uids(patrol_site), random.Random(1), HONEST)
        assert walk is not None and not walk.skipped and not walk.findings
        gaps = {p.checkpoint: p.min_gap_s for p in spec.points}
        assert [t.checkpoint for t in walk.taps][:2] == [p.checkpoint for p in spec.points][:2]
        assert walk.taps[0].at >= spec.starts_at and walk.taps[-1].at < spec.ends_at - timedelta(seconds=60)
        for a, b in itertools.pairwise(walk.taps):
            assert (b.at - a.at).total_seconds() >= gaps[b.checkpoint or ""] + MARGIN_S
        rnd, verdicts = _judged(spec, walk, patrol_site)
        assert [v.result for v in verdicts] == ["on_time"] * len(spec.points)
        assert close_due(rnd, spec.ends_at + spec.grace)[0].state == "completed"


def test_joining_a_round_under_way_walks_the_rest_of_it_or_leaves_it(patrol_site: SiteFile) -> None:
    spec = _round(patrol_site, "b1-plant-hourly")
    late = walk_round(spec, _uids(patrol_site), random.Random(1), HONEST, begin=spec.starts_at + timedelta(minutes=9))
    assert late is not None and late.taps[0].at >= spec.starts_at + timedelta(minutes=9)
    assert late.taps[-1].at < spec.ends_at
    assert walk_round(spec, _uids(patrol_site), random.Random(1), begin=spec.ends_at - timedelta(minutes=5)) is None


SLIPS: list[tuple[str, MistakeRates, set[str]]] = [
    ("swap", replace(HONEST, swap=1.0), {"out_of_order"}),
    ("too_fast", replace(HONEST, too_fast=1.0), {"too_fast"}),
    ("double", replace(HONEST, double=1.0), {"duplicate"}),
    ("unknown_tag", replace(HONEST, unknown_tag=1.0), {"unknown_tag"}),
    ("off_route", replace(HONEST, off_route=1.0), {"outside_window"}),
]


@pytest.mark.parametrize(("kind", "rates", "reasons"), SLIPS, ids=[s[0] for s in SLIPS])
def test_each_slip_gets_its_verdict_and_the_point_is_still_signed(
    patrol_site: SiteFile, kind: str, rates: MistakeRates, reasons: set[str]
) -> None:
    spec = _round(patrol_site, "b3-floors-hourly")
    walk = walk_round(spec, _uids(patrol_site), random.Random(2), rates)
    assert walk is not None
    slips = [t for t in walk.taps if t.mistake == kind]
    assert slips
    rnd, verdicts = _judged(spec, walk, patrol_site)
    by_tap = dict(zip(walk.taps, verdicts, strict=True))  # judge_all keeps the taps' time order
    assert [t.at for t in walk.taps] == sorted(t.at for t in walk.taps)
    assert {by_tap[t].reason for t in slips} == reasons
    assert all(by_tap[t].ok for t in walk.taps if t.mistake is None)
    assert close_due(rnd, spec.ends_at + spec.grace)[0].state == "completed"  # the guard put it right


def test_a_skipped_point_is_missed_and_the_round_incomplete(patrol_site: SiteFile) -> None:
    spec = _round(patrol_site, "b1-floors-hourly")  # its fire control room may be signed in any order
    walk = walk_round(spec, _uids(patrol_site), random.Random(2), replace(HONEST, skip=1.0))
    assert walk is not None and walk.skipped
    orders = {p.checkpoint: p.order for p in spec.points}
    last_fixed = max(orders, key=lambda c: orders[c])
    assert all(orders[c] == 0 or c == last_fixed for c in walk.skipped)  # nothing that would block the rest
    rnd, verdicts = _judged(spec, walk, patrol_site)
    assert all(v.ok for v in verdicts)
    ended = close_due(rnd, spec.ends_at + spec.grace)[0]
    assert ended.state == "incomplete" and {p.code for p in ended.points if p.result == "missed"} == set(walk.skipped)


@pytest.mark.parametrize(("makeup", "verdict"), [(True, "late"), (False, "outside_window")])
def test_a_guard_held_up_signs_the_last_point_in_the_grace_period(
    patrol_site: SiteFile, makeup: bool, verdict: str
) -> None:
    spec = _round(patrol_site, "b2-floors-hourly", makeup=makeup)
    walk = walk_round(spec, _uids(patrol_site), random.Random(2), replace(HONEST, late=1.0))
    assert walk is not None and walk.taps[-1].mistake == "late"
    assert spec.ends_at < walk.taps[-1].at < spec.ends_at + spec.grace
    _, verdicts = _judged(spec, walk, patrol_site)
    assert (verdicts[-1].result or verdicts[-1].reason) == verdict


def test_slips_come_at_the_configured_rates(patrol_site: SiteFile) -> None:
    rates = replace(HONEST, double=0.1, unknown_tag=0.05, finding=0.08)
    rng, uids = random.Random(5), _uids(patrol_site)
    walks = [walk_round(spec, uids, rng, rates) for spec in _rounds(patrol_site)]
    points = sum(len(w.taps) - sum(t.mistake is not None for t in w.taps) for w in walks if w)
    counts = Counter(t.mistake for w in walks if w for t in w.taps)
    assert points > 2000
    assert counts["double"] / points == pytest.approx(0.1, abs=0.02)
    assert counts["unknown_tag"] / points == pytest.approx(0.05, abs=0.015)
    assert sum(len(w.findings) for w in walks if w) / points == pytest.approx(0.08, abs=0.02)
    assert not walk_round(_rounds(patrol_site)[0], uids, random.Random(5), HONEST).findings  # type: ignore[union-attr]


def test_slips_never_push_a_round_past_its_end(patrol_site: SiteFile) -> None:
    """A slip or a finding costs time, so it happens only when the rest of the round still fits."""
    rates = MistakeRates(skip=0.1, swap=0.2, too_fast=0.2, double=0.1, unknown_tag=0.1, off_route=0.1, finding=0.2)
    rng, uids = random.Random(6), _uids(patrol_site)
    for spec in _rounds(patrol_site):
        walk = walk_round(spec, uids, rng, rates)
        assert walk is not None
        assert all(t.at < spec.ends_at for t in walk.taps if t.mistake not in ("late", "double"))


# ----------------------------------------------------------------------------- the walker


def _drive(walker: PatrolWalker, until: timedelta, tick: timedelta = timedelta(seconds=20)) -> Iterator[Any]:
    now = START
    while now <= START + until:
        taps, findings = walker.step(now)
        for m in taps:
            yield now, m
        for f in findings:
            yield now, f
        now += tick


def test_the_walker_follows_the_callers_clock_and_every_reader_walks(patrol_site: SiteFile) -> None:
    walker = PatrolWalker(patrol_site, START, random.Random(4), boot="boot1")
    out = list(_drive(walker, timedelta(hours=3)))
    taps = [(now, m) for now, m in out if not isinstance(m, FindingReport)]
    stamps = [datetime.fromisoformat(m.payload["ts"]) for _, m in taps]
    assert all(at <= now for (now, _), at in zip(taps, stamps, strict=True))  # nothing before its time
    assert stamps == sorted(stamps)
    assert stamps[0] - START < timedelta(minutes=1)  # a round under way is joined at once
    ids = [m.payload["id"] for _, m in taps]
    assert len(set(ids)) == len(ids) and all(i.startswith("rdr-h") and "-boot1w-" in i for i in ids)
    devices = {m.topic.split("/")[4] for _, m in taps}
    day_readers = {d.code for d in patrol_site.devices if d.holder in {"G001", "G002", "G003", "G004", "G005", "G006"}}
    assert day_readers | {"rdr-h13"} <= devices and walker.devices >= devices
    assert all(m.topic == f"patrol/v1/liyuan/reader/{m.topic.split('/')[4]}/tap" for _, m in taps)


def test_the_same_seed_walks_the_same_way(patrol_site: SiteFile) -> None:
    runs = [
        [
            getattr(m, "payload", m)
            for _, m in _drive(PatrolWalker(patrol_site, START, random.Random(9), boot="b"), timedelta(hours=1))
        ]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_over_a_day_every_verdict_shows(patrol_site: SiteFile) -> None:
    """Judged as the gateway would (one active round per guard), a demo day shows every verdict."""
    walker = PatrolWalker(patrol_site, START, random.Random(3), boot="b")
    out = list(_drive(walker, timedelta(hours=24), tick=timedelta(minutes=1)))
    holder = {d.code: d.holder or "" for d in patrol_site.devices}
    by_uid = {uid: code for code, uid in _uids(patrol_site).items()}
    staff = {s.code: (s.department, s.position) for s in patrol_site.staff}
    duty = duty_check(patrol_site.roster.shifts(staff), TZ)
    specs = [r for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)) for r in _rounds(patrol_site, day)]
    of_guard: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        of_guard.setdefault(spec.guard, []).append(i)
    rounds: dict[int, Round] = {}
    seen: Counter[str] = Counter()
    for _, m in out:
        if isinstance(m, FindingReport):
            seen["finding"] += 1
            continue
        guard, at = holder[m.topic.split("/")[4]], datetime.fromisoformat(m.payload["ts"])
        active = [i for i in of_guard.get(guard, []) if specs[i].starts_at <= at < specs[i].ends_at + specs[i].grace]
        assert len(active) <= 1
        if active and active[0] not in rounds:
            rounds[active[0]] = _judged(specs[active[0]], Walk((), (), ()), patrol_site)[0]
        tap = JudgedTap(by_uid.get(m.payload["uid"]), at, duty(guard, at))
        current = rounds.get(active[0]) if active else None
        rnd, (verdict,) = judge_all(current, [tap]) if current else (None, [_refused(tap)])
        if active and rnd is not None:
            rounds[active[0]] = rnd
        seen[verdict.reason or verdict.result or ""] += 1
    expected = {"on_time", "late", "out_of_order", "too_fast", "duplicate", "unknown_tag", "outside_window"}
    assert expected | {"no_active_round", "not_on_duty", "finding"} <= set(seen)
    assert seen["on_time"] > 0.8 * sum(seen.values())


def _refused(tap: JudgedTap) -> Verdict:
    from core.rounds import judge_tap

    return judge_tap(None, tap.on_duty, tap.point_code, tap.tapped_at)[0]


def test_the_simulator_leaves_walking_readers_alone(patrol_site: SiteFile) -> None:
    walker = PatrolWalker(patrol_site, START, boot="b")
    sim = SiteSimulator(patrol_site, START, exclude_readers=walker.devices)
    assert not {w.device for w in sim.walkers} & walker.devices
    taps = [m for m in sim.step(START + timedelta(seconds=30)) if m.topic.endswith("/tap")]
    assert not any(m.topic.split("/")[4] in walker.devices for m in taps)


# ----------------------------------------------------------------------------- findings


def test_the_photo_is_a_valid_png() -> None:
    png = tiny_png(random.Random(1), 16, 8)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + data)
        chunks[kind] = data
        pos += 12 + length
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (16, 8)
    assert len(zlib.decompress(chunks[b"IDAT"])) == 8 * (1 + 16 * 3)
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]


class _Api(BaseHTTPRequestHandler):
    posted: ClassVar[list[tuple[str, bytes, str]]] = []
    findings_answer: ClassVar[tuple[int, dict[str, Any]]] = (404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posted.append((self.path, body, self.headers.get("Authorization", "")))
        if self.path == "/api/v1/auth/token":
            self._answer(200, {"access_token": "tok", "token_type": "bearer"})
        else:
            self._answer(*type(self).findings_answer)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "detail", "posts"),
    [(201, "", 2), (404, "Not Found", 1), (404, "no location B1-F03-PW at site liyuan", 2)],
    ids=["created", "no-endpoint", "refused"],
)
def test_findings_are_posted_with_a_photo_and_a_missing_endpoint_is_tolerated(
    status: int, detail: str, posts: int
) -> None:
    """No endpoint yet (FastAPI's own 404): said once, nothing more is sent; a refused finding: the next is sent."""
    _Api.posted, _Api.findings_answer = [], (status, {"detail": detail} if detail else {"id": 1})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reporter = FindingsReporter(ApiLogin(f"http://127.0.0.1:{server.server_address[1]}", "demo", "pw"))
        photo = tiny_png(random.Random(1))
        for location in ("B1-F03-PW", "B1-F06-PW"):
            reporter.submit(FindingReport(START, "liyuan", location, "lock_damaged", "门锁损坏", photo, "G001"))
        reporter.close()
    finally:
        server.shutdown()
        server.server_close()
    paths = [p for p, _, _ in _Api.posted]
    assert paths[0] == "/api/v1/auth/token" and json.loads(_Api.posted[0][1]) == {"username": "demo", "password": "pw"}
    assert paths.count("/api/v1/findings") == posts
    assert reporter.disabled is (detail == "Not Found")
    _, body, auth = _Api.posted[1]
    assert auth == "Bearer tok" and photo in body and b'name="location"\r\n\r\nB1-F03-PW' in body
    assert b'name="photos"; filename="B1-F03-PW.png"' in body and b"Content-Type: image/png" in body


def test_multipart_bodies_end_with_their_boundary() -> None:
    body, content_type = multipart(
        {"site": "liyuan", "note": "门锁损坏"}, [("photos", "a.png", "image/png", b"\x89PNG")]
    )
    boundary = content_type.split("boundary=", 1)[1]
    assert body.endswith(f"--{boundary}--\r\n".encode()) and body.count(f"--{boundary}".encode()) == 4
    assert "门锁损坏".encode() in body


def test_every_finding_category_is_one_the_api_takes(patrol_site: SiteFile) -> None:
    from core.findings import CATEGORIES

    assert {c for found in FOUND_AT.values() for c in found} <= set(CATEGORIES) and set(NOTES) <= set(CATEGORIES)
    walker = PatrolWalker(patrol_site, START, boot="b")
    report = walker.finding_at(START, "G001", "B1-F03-PW")  # a pipe well: a plant-room finding (P1 §2.9)
    assert report.category in FOUND_AT["pipe_well"] and report.photo.startswith(b"\x89PNG")
