"""Simulated guards walking their patrol rounds (issue 8 item 11), so the demo shows every verdict.

From the site file's `plans:`, `routes:` and `roster:` each guard holding a handheld reader walks the
rounds `core.patrol_plans.rounds_due` calls for (the ones the gateway generates) from their start:
the route's points in order, each after the least walking time (`min_gap_s`) plus a random extra,
so an honest walk is signed on time. Now and then a guard slips, as guards do: passes a point by
(`skip`: the round ends incomplete), taps the next point first (`swap`: out_of_order), taps before
the walk could be done (`too_fast`), taps twice (`double`: duplicate), taps a card that is no
checkpoint (`unknown_tag`) or a checkpoint of another route (`off_route`: outside_window), is held up
and signs the last point in the grace period (`late`), or finds something and reports it with a
photo. Between rounds a reader now and then taps a checkpoint anyway (`stray`: no_active_round, or
not_on_duty off shift).

Pure but for `FindingsReporter`: `walk_round` plans one round from a seeded RNG, and
`PatrolWalker.step(now)` returns what is due by `now` (the clock is the caller's), so walks are tested
without a broker, an API or sleeping. `devices.simulator.run_simulator` publishes the taps through
its device clients and hands the findings to a `FindingsReporter`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from core.contract import tap_topic
from core.escalation import duty_check
from core.patrol_plans import Place, RoundPointSpec, RoundSpec, rounds_due
from devices.findings_reporter import FindingReport, tiny_png
from devices.outgoing import Outgoing, iso_ms
from storage.sitefile.schema import SiteFile

log = logging.getLogger(__name__)

Mistake = Literal["skip", "swap", "too_fast", "double", "unknown_tag", "off_route", "late", "stray"]
PER_POINT: tuple[Mistake, ...] = ("skip", "swap", "too_fast", "double", "unknown_tag", "off_route")
SLIP_COST = timedelta(minutes=5)  # the most a slip or a finding may cost before the round's end
SWAP_NEAR_S = 90  # points are swapped only with a next one this close (the next shop, not 30 floors up)
MARGIN_S = 3  # every honest tap comes at least this long after the walking gap: clocks drift a little
#: What a guard may find at a checkpoint of each type (core.findings categories), with a note.
FOUND_AT: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("machine_room", "pipe_well", "fan_room", "telecom_room", "pump_room", "switch_room", "elevator_room"),
        ("lock_damaged", "door_open", "facility"),  # P1 §2.9
    ),
    **dict.fromkeys(("shop", "lobby", "floor", "office"), ("cleanliness", "facility", "dispute", "renovation")),
    **dict.fromkeys(("parking", "road", "gate"), ("illegal_parking", "fire_lane_blocked", "littering", "facility")),
    "green_area": ("green_area", "greening", "littering"),
}
NOTES = {
    "lock_damaged": "门锁损坏，门关不上 / the door lock is damaged, the door does not shut",
    "door_open": "机房门未关，已关好 / the plant room door was open: closed it",
    "facility": "设施损坏：照明灯不亮 / a facility is damaged: a light is out",
    "cleanliness": "地面垃圾未清理 / litter on the floor not cleared",
    "dispute": "商户与住户发生争执 / a shopkeeper and a resident are arguing",
    "renovation": "装修垃圾堆放在走廊 / renovation waste left in the corridor",
    "illegal_parking": "车辆占道停放 / a car parked in the driveway",
    "fire_lane_blocked": "消防通道被杂物占用 / the fire lane is blocked with clutter",
    "littering": "有人乱扔果皮纸屑 / litter thrown about",
    "green_area": "绿地被践踏 / the lawn has been trampled",
    "greening": "树木需修剪 / trees need pruning",
}


@dataclass(frozen=True, slots=True)
class MistakeRates:
    """How often a guard slips: per point (one slip at most), `late` per round, `finding` per point."""

    skip: float = 0.02  # only points whose skipping blocks nothing: any-order points and the last one
    swap: float = 0.03
    too_fast: float = 0.03
    double: float = 0.03
    unknown_tag: float = 0.015
    off_route: float = 0.015
    late: float = 0.08
    finding: float = 0.03


HONEST = MistakeRates(0, 0, 0, 0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class WalkTap:
    at: datetime
    uid: str
    checkpoint: str | None  # None: a card that is no checkpoint of the site
    mistake: Mistake | None = None  # None: an honest sign-in


@dataclass(frozen=True, slots=True)
class Walk:
    """One round as a guard walks it: the taps in time order, where something was found, what was passed by."""

    taps: tuple[WalkTap, ...]
    findings: tuple[tuple[datetime, str], ...]
    skipped: tuple[str, ...]


def _walking_order(points: tuple[RoundPointSpec, ...], rng: random.Random) -> list[RoundPointSpec]:
    """The fixed sequence, with each any-order point slipped in where the guard happens to pass it."""
    order = sorted((p for p in points if p.order), key=lambda p: p.order)
    for p in (p for p in points if not p.order):
        order.insert(rng.randint(0, len(order)), p)
    return order


def walk_round(
    rnd: RoundSpec,
    uids: Mapping[str, str],
    rng: random.Random,
    rates: MistakeRates = MistakeRates(),
    *,
    begin: datetime | None = None,
) -> Walk | None:
    """The taps of one round walked from `begin` (its start by default; later when the walker joins a
    round under way). The extras shrink when time is short; None when too little is left to walk it.
    `uids`: checkpoint → tag UID for the whole site (other routes' tags are the `off_route` cards)."""
    start = max(rnd.starts_at, begin or rnd.starts_at)
    order = _walking_order(rnd.points, rng)
    least = sum(p.min_gap_s + MARGIN_S for p in order)
    budget = (rnd.ends_at - start).total_seconds() - 60
    if least > budget:
        return None
    pace = min(1.0, (budget - least) / (35 + sum(p.min_gap_s * 0.2 + 11 for p in order)))

    def walk(gap: int) -> timedelta:
        return timedelta(seconds=gap + MARGIN_S + pace * (gap * rng.uniform(0.05, 0.35) + rng.uniform(0, 22)))

    def secs(lo: float, hi: float) -> timedelta:
        return timedelta(seconds=rng.uniform(lo, hi))

    on_round = {p.checkpoint for p in rnd.points}
    decoys = sorted(code for code in uids if code not in on_round)
    taps: list[WalkTap] = []
    findings: list[tuple[datetime, str]] = []
    skipped: list[str] = []
    here = start + secs(0, 60 * pace)  # when the guard is free to walk on
    last_ok: datetime | None = None
    late_at = len(order) - 1 if rnd.grace >= timedelta(minutes=1) and rng.random() < rates.late else None
    for i, p in enumerate(order):
        arrive = here if last_ok is None else here + walk(p.min_gap_s)
        rest = timedelta(seconds=sum(q.min_gap_s * (1 + 0.35 * pace) + MARGIN_S + 22 * pace for q in order[i + 1 :]))
        spare = rnd.ends_at - arrive - rest > SLIP_COST  # a slip takes time: only when there is time for it
        slip, found = (_slip(rng, rates), rng.random() < rates.finding) if spare else (None, False)
        nxt = order[i + 1] if i + 1 < len(order) else None
        if slip == "skip" and (p.order == 0 or nxt is None):
            skipped.append(p.checkpoint)
            here = arrive
            continue
        if slip == "swap" and p.order and nxt and nxt.order == p.order + 1 and nxt.min_gap_s <= SWAP_NEAR_S:
            wrong = arrive + walk(nxt.min_gap_s)
            taps.append(WalkTap(wrong, uids[nxt.checkpoint], nxt.checkpoint, "swap"))
            arrive = wrong + walk(nxt.min_gap_s)  # the red beep: back to the point passed by
        elif slip == "too_fast" and last_ok is not None and p.min_gap_s >= 15:
            early = last_ok + timedelta(seconds=p.min_gap_s * rng.uniform(0.2, 0.6))
            if early > here + timedelta(seconds=1):
                taps.append(WalkTap(early, uids[p.checkpoint], p.checkpoint, "too_fast"))
                arrive = max(arrive, early + secs(5, 15))
        elif slip == "unknown_tag":
            taps.append(WalkTap(arrive, _stranger_uid(rng, uids), None, "unknown_tag"))
            arrive += secs(4, 15)
        elif slip == "off_route" and decoys:
            other = rng.choice(decoys)
            taps.append(WalkTap(arrive, uids[other], other, "off_route"))
            arrive += secs(4, 15)
        mistake: Mistake | None = None
        if i == late_at:
            arrive, mistake = max(arrive, rnd.ends_at + rnd.grace * rng.uniform(0.2, 0.6)), "late"
        taps.append(WalkTap(arrive, uids[p.checkpoint], p.checkpoint, mistake))
        last_ok = here = arrive
        if slip == "double":
            here = arrive + secs(2, 8)
            taps.append(WalkTap(here, uids[p.checkpoint], p.checkpoint, "double"))
        if found:
            findings.append((here + secs(20, 60), p.checkpoint))
            here += secs(60, 120)  # the photo and the note take a minute or two
    return Walk(tuple(taps), tuple(findings), tuple(skipped))


def _slip(rng: random.Random, rates: MistakeRates) -> Mistake | None:
    roll = rng.random()
    for kind in PER_POINT:
        rate: float = getattr(rates, kind)
        if roll < rate:
            return kind
        roll -= rate
    return None


def _stranger_uid(rng: random.Random, uids: Mapping[str, str]) -> str:
    """A 4-byte random UID (first byte 08, as such cards have): a resident's card, not a checkpoint."""
    known = set(uids.values())
    while (uid := f"08{rng.getrandbits(24):06X}") in known:
        pass
    return uid


class PatrolWalker:
    """Every guard with a handheld reader walking the rounds the site's plans call for; `step(now)`
    returns the taps (to publish) and findings (to report) due by `now`. Rounds are planned up to
    `lookahead` ahead; a round under way when the walker starts is joined if it can still be walked."""

    def __init__(
        self,
        site: SiteFile,
        start: datetime,
        rng: random.Random | None = None,
        rates: MistakeRates = MistakeRates(),
        *,
        boot: str,
        stray_every_s: float = 600.0,
        lookahead: timedelta = timedelta(minutes=30),
    ) -> None:
        self.site, self.rates, self.boot = site, rates, boot
        self.rng = rng or random.Random(8)
        self.readers = {d.holder: d.code for d in site.devices if d.kind == "handheld_reader" and d.holder}
        self._uids = {loc.code: loc.tag for loc in site.locations if loc.tag}
        self._types = {loc.code: loc.type for loc in site.locations}
        self._places = {loc.code: Place(loc.building, loc.floor) for loc in site.locations}
        self._routes = {r.code: r for r in site.routes}
        self._shift_guards = [s.code for s in site.staff if s.position == "guard"]  # as the gateway has them
        shifts = site.roster.shifts({s.code: (s.department, s.position) for s in site.staff})
        self._duty = duty_check(shifts, site.site.timezone)  # the gateway's rule: no roster, everyone on duty
        self._zone = ZoneInfo(site.site.timezone)
        self._start = self._planned_until = start
        self._lookahead, self._stray_every_s = lookahead, stray_every_s
        self._next_stray = start + timedelta(seconds=self.rng.expovariate(1 / stray_every_s))
        self._due: list[tuple[datetime, int, str, WalkTap | str]] = []  # (when, tie, guard, tap or checkpoint found)
        self._tie = itertools.count()
        self._walked: dict[tuple[str, str, datetime], tuple[datetime, datetime]] = {}  # round key → its span
        self._seq: dict[str, itertools.count[int]] = {}
        self._readerless: set[str] = set()

    @property
    def guards(self) -> list[str]:
        """The guards the plans name (every guard for a `shift: true` plan) who hold a reader."""
        named = {g for p in self.site.plans for g in (p.guards if p.guards is not None else self._shift_guards)}
        return sorted(g for g in named if g in self.readers)

    @property
    def devices(self) -> set[str]:
        """The readers that walk rounds: the simulator's random taps leave them alone."""
        return {self.readers[g] for g in self.guards}

    def step(self, now: datetime) -> tuple[list[Outgoing], list[FindingReport]]:
        """The taps (to publish) and findings (to report) due by `now`, each tap stamped with its own time."""
        if now + self._lookahead / 2 >= self._planned_until:
            horizon = now + self._lookahead
            self._plan(self._planned_until, horizon)
            self._plan_strays(horizon)
            self._planned_until = horizon
        taps: list[Outgoing] = []
        findings: list[FindingReport] = []
        while self._due and self._due[0][0] <= now:
            at, _, guard, item = heapq.heappop(self._due)
            if isinstance(item, WalkTap):
                taps.append(self._outgoing(self.readers[guard], item))
            else:
                findings.append(self.finding_at(at, guard, item))
        return taps, findings

    def _plan(self, lo: datetime, hi: datetime) -> None:
        """Walk every round that starts before `hi` and is not over at `lo` (yesterday's may run past midnight)."""
        first, last = (lo - timedelta(days=1)).astimezone(self._zone).date(), hi.astimezone(self._zone).date()
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        for plan in self.site.plans:
            route = self._routes[plan.route]
            for day in days:
                for rnd in rounds_due(
                    plan, route, self._places, day, self._zone, self._duty, shift_guards=self._shift_guards
                ):
                    if rnd.starts_at < hi and rnd.ends_at > lo and rnd.key not in self._walked:
                        self._walk(rnd)
        for key in [k for k, (_, closes) in self._walked.items() if closes < lo - timedelta(days=1)]:
            del self._walked[key]

    def _walk(self, rnd: RoundSpec) -> None:
        self._walked[rnd.key] = (rnd.starts_at, rnd.ends_at + rnd.grace)
        if rnd.guard not in self.readers:
            if rnd.guard not in self._readerless:
                self._readerless.add(rnd.guard)
                log.warning("guard %s has rounds but holds no handheld reader: not walked", rnd.guard)
            return
        walk = walk_round(rnd, self._uids, self.rng, self.rates, begin=max(rnd.starts_at, self._start))
        local = rnd.starts_at.astimezone(self._zone).strftime("%H:%M")
        if walk is None:
            log.info("%s's round %s at %s: too little time left to join it", rnd.guard, rnd.plan, local)
            return
        for tap in walk.taps:
            heapq.heappush(self._due, (tap.at, next(self._tie), rnd.guard, tap))
        for at, checkpoint in walk.findings:
            heapq.heappush(self._due, (at, next(self._tie), rnd.guard, checkpoint))
        slips = [t.mistake for t in walk.taps if t.mistake] + [f"skip {c}" for c in walk.skipped]
        more = f", slips: {', '.join(slips)}" if slips else ""
        log.info(
            "%s (%s) walks %s at %s: %d taps%s",
            rnd.guard,
            self.readers[rnd.guard],
            rnd.plan,
            local,
            len(walk.taps),
            more,
        )

    def _plan_strays(self, horizon: datetime) -> None:
        """Now and then a reader taps a checkpoint outside its guard's rounds: mostly a guard on duty
        between rounds (no_active_round), else one off shift (not_on_duty)."""
        while self._next_stray < horizon and self._uids:
            at = self._next_stray
            self._next_stray += timedelta(seconds=self.rng.expovariate(1 / self._stray_every_s))
            free = [g for g in self.guards if not self._busy(g, at)]
            on_duty = [g for g in free if self._duty(g, at)]
            pool = on_duty if on_duty and self.rng.random() < 0.7 else free
            if pool:
                guard, checkpoint = self.rng.choice(pool), self.rng.choice(sorted(self._uids))
                tap = WalkTap(at, self._uids[checkpoint], checkpoint, "stray")
                heapq.heappush(self._due, (at, next(self._tie), guard, tap))

    def _busy(self, guard: str, at: datetime) -> bool:
        """Within a minute of one of the guard's rounds (a stray tap then would be judged as part of it)."""
        margin = timedelta(minutes=1)
        return any(g == guard and a - margin <= at < b + margin for (_, g, _), (a, b) in self._walked.items())

    def _outgoing(self, device: str, tap: WalkTap) -> Outgoing:
        seq = next(self._seq.setdefault(device, itertools.count(1)))
        # "w": the walker's own id space beside the simulator's, ids stay unique per device
        payload = {"id": f"{device}-{self.boot}w-{seq:06d}", "ts": iso_ms(tap.at), "uid": tap.uid}
        return Outgoing(tap_topic(self.site.site.code, device), payload)

    def finding_at(self, at: datetime, guard: str, checkpoint: str) -> FindingReport:
        """Something a guard finds at a checkpoint of its type (FOUND_AT), with a note and a photo."""
        category = self.rng.choice(FOUND_AT.get(self._types.get(checkpoint, ""), ("facility", "cleanliness")))
        return FindingReport(at, self.site.site.code, checkpoint, category, NOTES[category], tiny_png(self.rng), guard)
