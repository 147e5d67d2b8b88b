"""A patrol plan on the demo site for tests: one route of three fixed checkpoints on building 1's
ground floor and one any-order point, walked by guard G001 (reader rdr-h01) at 10:00 Shanghai."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, select

from core.patrol_plans import PlanSpec, RouteSpec
from storage.db import session_factory, transaction
from storage.models import Round as RoundRow
from storage.models import RoundPoint, Staff
from storage.sitefile.load import load_site
from storage.sitefile.schema import SiteFile

SITE = "liyuan"
READER = "rdr-h01"  # held by G001, on duty 08:00-20:00
GUARD = "G001"
ROUND_START = datetime(2025, 11, 28, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
#: the route's checkpoints in walking order: (location code, tag UID, order)
POINTS = (
    ("B1-F01-LOBBY", "04B5B0C8DAAEB8", 1),
    ("B1-SHOP101", "04B72D15290837", 2),  # P1 §2.4: the shop with its floor, right after it
    ("B1-F01-TEL", "04E8D714FDD5A7", 3),
    ("B1-SHOP102", "0444F7B121F6AC", 0),  # any time during the round
)
UID = {code: uid for code, uid, _ in POINTS}
UNKNOWN_UID = "04FFFFFFFFFF01"


def route(**changes: object) -> RouteSpec:
    data: dict[str, object] = {
        "code": "T-B1-GF",
        "name": {"zh": "1栋首层巡查", "en": "Building 1 ground floor"},
        "area": "B1-PUBLIC",
        "points": [{"checkpoint": code, "order": order} for code, _, order in POINTS],
    }
    return RouteSpec.model_validate(data | changes)


def plan(**changes: object) -> PlanSpec:
    data: dict[str, object] = {
        "code": "T-B1-MORNING",
        "route": "T-B1-GF",
        "guards": [GUARD],
        "period": {"every": "day"},
        "from_date": date(2025, 1, 1),
        "starts": ["10:00"],
        "duration_min": 30,
        "grace_min": 5,
        "makeup": True,
    }
    return PlanSpec.model_validate(data | changes)


def with_plans(site: SiteFile, routes: list[RouteSpec] | None = None, plans: list[PlanSpec] | None = None) -> SiteFile:
    return site.model_copy(update={"routes": routes or [route()], "plans": plans or [plan()]})


def load_plans(engine: Engine, site: SiteFile, now: datetime = ROUND_START - timedelta(minutes=30)) -> None:
    """Load the site file with its plans; round generation is due at `now` (the tests' clock)."""
    with transaction(session_factory(engine)) as session:
        load_site(session, site, now)


def tap_body(uid: str, msg_id: str, at: datetime) -> dict[str, object]:
    return {"id": msg_id, "ts": int(at.timestamp() * 1000), "uid": uid}


def rounds_of(
    engine: Engine, guard: str = GUARD, day_of: datetime | None = ROUND_START
) -> list[tuple[RoundRow, dict[str, str]]]:
    """Each round of the guard starting within a day of `day_of` (rounds of the next day are
    generated ahead too), with {checkpoint: result}."""
    with session_factory(engine)() as s:
        rows = list(s.scalars(select(RoundRow).join(Staff, Staff.id == RoundRow.guard_id).where(Staff.code == guard)))
        found = []
        for r in sorted(rows, key=lambda r: r.starts_at):
            if day_of is not None and not day_of <= r.starts_at < day_of + timedelta(hours=23):
                continue
            points = s.scalars(select(RoundPoint).where(RoundPoint.round_id == r.id).order_by(RoundPoint.seq))
            found.append((r, {p.checkpoint: p.result for p in points}))
        return found


def at(minutes: float) -> datetime:
    return ROUND_START + timedelta(minutes=minutes)
