"""Patrol rounds (巡查任务) and the verdict at the reader (P1 §2.3: each round is followed and signed in).

Pure: a round is a frozen value, every rule takes the tap's own time (`tapped_at`) or `now` and
returns a new round; nothing here reads a clock, a broker or a database. The caller holds the lock
of the round, judges, stores the new round and the verdict (a refused tap is recorded too).

Times, per point (absolute, made by the plan from the round's start):
- `opens_at`: earliest on-time sign-in; up to `Round.early_s` before it a sign-in is accepted as `early`.
- `due_at`: on time until (inclusive).
- `closes_at`: the instant the point's window shuts (exclusive): after `due_at` a sign-in is `late`
  until then. The plan sets it to `due_at + grace` when makeup is allowed, else to just after `due_at`.
  `close_due` marks a still-pending point `missed` once `closes_at <= now`, the same instant at which
  a tap stops counting, so the order of "tap" and "sweep" at that instant does not change the result.

Out-of-order arrival: every check depends only on the round's sign-ins and `tapped_at`, never on
`now`, so the caller that re-judges a round's taps in `tapped_at` order (`replay`) gets one result
however the taps reached the gateways. A fixed point counts as passed for the sequence when its
window had shut at the tap's time, whether or not a sweep has marked it missed yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

RoundState = Literal["scheduled", "in_progress", "completed", "incomplete", "missed"]
PointResult = Literal["pending", "early", "on_time", "late", "missed"]
Condition = Literal["normal", "abnormal"]
#: Why a tap was refused; the strings of core.contract.Reason plus `not_on_duty` (issue 8).
VerdictReason = Literal[
    "unknown_tag", "not_on_duty", "no_active_round", "duplicate", "out_of_order", "too_fast", "outside_window"
]

FINAL_STATES: frozenset[str] = frozenset({"completed", "incomplete", "missed"})
SIGNED_RESULTS: frozenset[str] = frozenset({"early", "on_time", "late"})
DUP_INTERVAL_S = 60  # a second tap of the same tag within a minute is the guard's double tap, not a new sign-in


@dataclass(frozen=True, slots=True)
class Point:
    """One checkpoint of a round and its result (巡查明细). `order` 0 = any order, 1..n = fixed sequence."""

    code: str
    order: int
    opens_at: datetime
    due_at: datetime
    closes_at: datetime
    min_gap_s: int = 0  # minimum seconds since the round's previous sign-in (walking time)
    result: PointResult = "pending"
    signed_at: datetime | None = None
    condition: Condition | None = None  # what the guard found at the point (normal/abnormal), with the sign-in

    @property
    def signed(self) -> bool:
        return self.result in SIGNED_RESULTS


@dataclass(frozen=True, slots=True)
class Round:
    """One guard's round of one plan: its span, its points and the last valid sign-in."""

    id: int
    guard: str
    starts_at: datetime
    ends_at: datetime
    grace_s: int
    makeup: bool
    state: RoundState = "scheduled"
    points: tuple[Point, ...] = ()
    last_signed_at: datetime | None = None
    last_point: str | None = None
    early_s: int = 0  # how long before `opens_at` a sign-in is still accepted, as `early`

    @property
    def closes_at(self) -> datetime:
        """The end of the round plus its grace period: after this no tap counts and the round ends."""
        return self.ends_at + timedelta(seconds=self.grace_s)

    def point(self, code: str) -> Point | None:
        return next((p for p in self.points if p.code == code), None)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the reader shows at once: ok with the point and the next one, or why not."""

    ok: bool
    reason: VerdictReason | None = None
    point: str | None = None  # the checkpoint tapped (None for an unknown tag)
    next_point: str | None = None  # the next pending checkpoint of the round, for ok verdicts
    result: PointResult | None = None  # early / on_time / late for ok verdicts


@dataclass(frozen=True, slots=True)
class Tap:
    """A tap to replay: the checkpoint code (None: not a checkpoint of the site), its own time, duty."""

    point_code: str | None
    tapped_at: datetime
    on_duty: bool = True


def _refuse(reason: VerdictReason, point: str | None) -> Verdict:
    return Verdict(ok=False, reason=reason, point=point)


def _out_of_order(rnd: Round, point: Point, tapped_at: datetime) -> bool:
    """A fixed point is out of order while an earlier fixed point is unsigned and its window still open."""
    if point.order < 1:
        return False
    return any(1 <= p.order < point.order and not p.signed and p.closes_at > tapped_at for p in rnd.points)


def _timing(rnd: Round, point: Point, tapped_at: datetime) -> PointResult | None:
    """early / on_time / late by the tap's own time, or None when outside the point's window."""
    if tapped_at >= point.closes_at or tapped_at < point.opens_at - timedelta(seconds=rnd.early_s):
        return None
    if tapped_at < point.opens_at:
        return "early"
    return "on_time" if tapped_at <= point.due_at else "late"


def next_point(rnd: Round, at: datetime) -> str | None:
    """The next point to walk to: pending points whose window has not shut at `at`, the fixed sequence
    first (by order), then the any-order points as the plan lists them."""
    open_points = [p for p in rnd.points if p.result == "pending" and p.closes_at > at]
    fixed = sorted((p for p in open_points if p.order >= 1), key=lambda p: p.order)
    free = [p for p in open_points if p.order < 1]
    return (fixed + free)[0].code if fixed or free else None


def judge_tap(
    rnd: Round | None,
    on_duty: bool,
    point_code: str | None,
    tapped_at: datetime,
    dup_interval_s: int = DUP_INTERVAL_S,
    condition: Condition = "normal",
) -> tuple[Verdict, Round | None]:
    """Judge one tap on its own time (P1 §2.3). Checks, in this order, the first failing one wins:

    1. `unknown_tag`: the tag is not a checkpoint of the site (`point_code` None);
    2. `not_on_duty`: the guard is not on duty at `tapped_at`;
    3. `no_active_round`: no round, or `tapped_at` outside [starts_at, ends_at + grace);
    4. `duplicate`: the point was signed less than `dup_interval_s` from this tap (either side);
    5. `outside_window` for a checkpoint of the site that is not on this round (the tag is known, so
       `unknown_tag` would send the guard to the office for nothing; no window of this round covers it),
       or for a point signed longer ago than the duplicate interval (its one sign-in is taken);
    6. `out_of_order`: a fixed point earlier in the sequence is unsigned and its window still open;
    7. `too_fast`: less than the point's `min_gap_s` since the round's previous sign-in;
    8. `outside_window`: before `opens_at - early_s`, or at or after `closes_at`;
    then ok, with early / on_time / late. The round goes `in_progress` at its first ok sign-in (a round
    already ended by a sweep is re-decided: a late-arriving tap from before the window shut still counts).
    A refused tap returns the round unchanged.
    """
    if point_code is None:
        return _refuse("unknown_tag", None), rnd
    if not on_duty:
        return _refuse("not_on_duty", point_code), rnd
    if rnd is None or not rnd.starts_at <= tapped_at < rnd.closes_at:
        return _refuse("no_active_round", point_code), rnd
    point = rnd.point(point_code)
    if point and point.signed_at and abs((tapped_at - point.signed_at).total_seconds()) < dup_interval_s:
        return _refuse("duplicate", point_code), rnd
    if point is None or point.signed:
        return _refuse("outside_window", point_code), rnd
    if _out_of_order(rnd, point, tapped_at):
        return _refuse("out_of_order", point_code), rnd
    if rnd.last_signed_at is not None and (tapped_at - rnd.last_signed_at).total_seconds() < point.min_gap_s:
        return _refuse("too_fast", point_code), rnd
    result = _timing(rnd, point, tapped_at)
    if result is None:
        return _refuse("outside_window", point_code), rnd
    signed = replace(point, result=result, signed_at=tapped_at, condition=condition)
    points = tuple(signed if p.code == point_code else p for p in rnd.points)
    new = replace(rnd, points=points, last_signed_at=tapped_at, last_point=point_code)
    state: RoundState = _final_state(new.points) if rnd.state in FINAL_STATES else "in_progress"
    new = replace(new, state=state)
    return Verdict(ok=True, point=point_code, next_point=next_point(new, tapped_at), result=result), new


def _final_state(points: Iterable[Point]) -> RoundState:
    """completed: every point signed; missed: none signed; incomplete: some of each."""
    signed = [p.signed for p in points]
    if all(signed):
        return "completed"
    return "incomplete" if any(signed) else "missed"


def close_due(rnd: Round, now: datetime) -> tuple[Round, list[str]]:
    """Mark pending points whose window shut (`closes_at <= now`) as missed, and end the round when
    every point is decided or its end + grace has passed (then every pending point is missed).

    Returns the new round and the codes newly missed, so the caller alerts the control room once per
    point: a second call at the same or a later `now` returns no point twice. An ended round is left as is.
    """
    if rnd.state in FINAL_STATES:
        return rnd, []
    over = now >= rnd.closes_at
    newly: list[str] = []
    points: list[Point] = []
    for p in rnd.points:
        if p.result == "pending" and (over or p.closes_at <= now):
            newly.append(p.code)
            p = replace(p, result="missed")
        points.append(p)
    decided = all(p.result != "pending" for p in points)
    state = _final_state(points) if over or decided else rnd.state
    return replace(rnd, points=tuple(points), state=state), newly


def next_due(rnd: Round) -> datetime | None:
    """When `close_due` next has something to do: the earliest window of a pending point to shut, or
    the round's end + grace; None once the round has ended."""
    if rnd.state in FINAL_STATES:
        return None
    return min([p.closes_at for p in rnd.points if p.result == "pending"] + [rnd.closes_at])


def completion_pct(rnd: Round) -> float:
    """Signed points ÷ all points × 100, one decimal (a round without points is 100 % done)."""
    if not rnd.points:
        return 100.0
    return round(100.0 * sum(p.signed for p in rnd.points) / len(rnd.points), 1)


def lateness_s(rnd: Round) -> int:
    """Total seconds past `due_at` over the late sign-ins (a sum, not the max: two points 10 min late
    weigh more than one, which is what a supervisor compares; the max is `max_lateness_s`)."""
    return sum(_late_by(p) for p in rnd.points)


def max_lateness_s(rnd: Round) -> int:
    """The worst single late sign-in, in seconds past its `due_at` (0 when none was late)."""
    return max((_late_by(p) for p in rnd.points), default=0)


def _late_by(p: Point) -> int:
    if p.result != "late" or p.signed_at is None:
        return 0
    return int((p.signed_at - p.due_at).total_seconds())


def judge_all(rnd: Round, taps: Iterable[Tap], dup_interval_s: int = DUP_INTERVAL_S) -> tuple[Round, list[Verdict]]:
    """Judge taps in `tapped_at` order (ties by point code), threading the round; the verdicts follow
    that order."""
    verdicts: list[Verdict] = []
    current = rnd
    for tap in sorted(taps, key=lambda t: (t.tapped_at, t.point_code or "")):
        verdict, after = judge_tap(current, tap.on_duty, tap.point_code, tap.tapped_at, dup_interval_s)
        verdicts.append(verdict)
        current = after if after is not None else current
    return current, verdicts


def replay(round_at_start: Round, taps: Iterable[Tap], dup_interval_s: int = DUP_INTERVAL_S) -> Round:
    """The round after all its taps, judged in their own time order: the same however they arrived
    (two gateways, a reader's offline queue). The caller replays under the round's lock."""
    return judge_all(round_at_start, taps, dup_interval_s)[0]
