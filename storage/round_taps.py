"""Taps judged against the guard's round, in the tap's batch (issue 8 item 5; P1 §2.3).

The caller has locked the guards' staff rows; the rounds are then locked too (FOR UPDATE on
PostgreSQL), so one guard's taps are decided one at a time whichever gateway holds them. A tap that
arrives in its own time order is judged on the round as it stands. One that arrives after a later
tap of the same round (two gateways, a reader's offline queue) replays the whole round in tap-time
order (`core.rounds.judge_tap` over every tap of the round), so the round's results are the same
however the taps arrived; the answer each earlier tap got is kept, as it was already shown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.rounds import Round, Tap, Verdict, close_due, judge_tap
from core.taps import TapDecision
from storage.message_log import MessageKey
from storage.models import Location, SignIn
from storage.models import Round as RoundRow
from storage.rounds import LoadedRound, as_value, load_where, save

#: the longest a round can stay open after it starts: a day-long round plus the longest grace (4 h)
LONGEST_ROUND = timedelta(hours=28)
LONGEST_GRACE = timedelta(minutes=240)  # core.patrol_plans.PlanSpec.grace_min's bound


@dataclass(frozen=True, slots=True)
class RoundTap:
    """A new tap of a site with plans: who, where (the checkpoint's location), when it counts."""

    key: MessageKey  # the tap's (device, msg id)
    guard_id: int
    guard: str  # the guard's code (the roster names guards by code)
    location_id: int
    checkpoint: str  # the location's code (the directory's)
    tapped_at: datetime


@dataclass
class Judged:
    decisions: dict[MessageKey, TapDecision] = field(default_factory=dict)
    changed: list[LoadedRound] = field(default_factory=list)  # rounds whose state changed, in id order


def judge_round_taps(
    session: Session,
    taps: Sequence[RoundTap],
    base: dict[MessageKey, TapDecision],
    duty: Callable[[str, datetime], bool],
    now: datetime,
) -> Judged:
    """The verdict of each tap (its `base` decision, from the tag, refined by the round) and the
    rounds that changed. Taps of one guard are judged in tap-time order; `duty`: whether a guard
    (by code) is on the roster at an instant (core.escalation.duty_check)."""
    judged = Judged()
    if not taps:
        return judged
    times = [t.tapped_at for t in taps]
    guards = {t.guard_id: t.guard for t in taps}
    rounds = _guards_rounds(session, guards, min(times), max([*times, now]))
    by_guard: dict[int, list[LoadedRound]] = defaultdict(list)
    for r in rounds:
        by_guard[r.row.guard_id].append(r)
    batch: dict[int, list[Tap]] = defaultdict(list)  # taps of this batch per round, not yet in the database
    changed: dict[int, LoadedRound] = {}
    for tap in sorted(taps, key=lambda t: (t.guard_id, t.tapped_at)):
        decided = base[tap.key]  # by the tag: who and where
        code = tap.checkpoint
        on_duty = duty(tap.guard, tap.tapped_at)
        chosen = _round_for(by_guard[tap.guard_id], code, tap.tapped_at)
        if chosen is None:
            verdict, _ = judge_tap(None, on_duty, code, tap.tapped_at)
            judged.decisions[tap.key] = _decision(decided, verdict, None, {})
            continue
        this = Tap(code, tap.tapped_at, on_duty)
        verdict, new = _judge(session, chosen, this, batch[chosen.row.id], duty, now)
        batch[chosen.row.id].append(this)
        if new is not None and all(p.result != "pending" for p in new.points):
            new, _ = close_due(new, now)  # every point decided: the round ends now, not at its end time
        if new is not None and new != chosen.value:
            chosen.value = new
            changed[chosen.row.id] = chosen
        judged.decisions[tap.key] = _decision(decided, verdict, chosen, _ids(chosen))
    for r in sorted(changed.values(), key=lambda r: r.row.id):
        if save(session, r, r.value, now):
            judged.changed.append(r)
    return judged


def _guards_rounds(session: Session, guards: dict[int, str], earliest: datetime, latest: datetime) -> list[LoadedRound]:
    """The guards' rounds that may be open at any of the taps' times (started by the latest, not
    ended plus the longest grace before the earliest), locked: usually one or two per guard."""
    window = [
        RoundRow.guard_id.in_(list(guards)),
        RoundRow.starts_at >= earliest - LONGEST_ROUND,
        RoundRow.starts_at <= latest,
        RoundRow.ends_at > earliest - LONGEST_GRACE,
    ]
    return list(load_where(session, window, lock=True, guards=guards).values())


def _round_for(rounds: list[LoadedRound], code: str | None, at: datetime) -> LoadedRound | None:
    """The round a tap belongs to: of the guard's rounds open at the tap's time, the one where the
    checkpoint is still pending, else one that has it, else the earliest."""
    open_ = sorted((r for r in rounds if r.value.starts_at <= at < r.value.closes_at), key=lambda r: r.value.starts_at)
    pending = [r for r in open_ if (p := r.value.point(code or "")) is not None and p.result == "pending"]
    having = [r for r in open_ if r.value.point(code or "") is not None]
    found = pending or having or open_
    return found[0] if found else None


def _judge(
    session: Session,
    loaded: LoadedRound,
    tap: Tap,
    earlier_in_batch: list[Tap],
    duty: Callable[[str, datetime], bool],
    now: datetime,
) -> tuple[Verdict, Round | None]:
    latest = loaded.row.last_tap_at
    if latest is None or tap.tapped_at >= latest:
        loaded.row.last_tap_at = tap.tapped_at
        return judge_tap(loaded.value, tap.on_duty, tap.point_code, tap.tapped_at)
    return _replay(session, loaded, tap, earlier_in_batch, duty, now)


def _replay(
    session: Session,
    loaded: LoadedRound,
    tap: Tap,
    earlier_in_batch: list[Tap],
    duty: Callable[[str, datetime], bool],
    now: datetime,
) -> tuple[Verdict, Round]:
    """Judge every tap of the round again in tap-time order, this one among them; the points whose
    window has shut by `now` without a sign-in are missed again, as the sweep had them."""
    stored = session.execute(
        select(Location.code, SignIn.tapped_at)
        .join(Location, Location.id == SignIn.location_id)
        .where(SignIn.round_id == loaded.row.id)
    )
    guard = loaded.value.guard
    taps = [Tap(code, at, duty(guard, at)) for code, at in stored] + earlier_in_batch + [tap]
    current = as_value(loaded.row, loaded.points, loaded.value.guard, fresh=True)
    mine: Verdict | None = None
    for t in sorted(taps, key=lambda t: (t.tapped_at, t.point_code or "")):
        verdict, after = judge_tap(current, t.on_duty, t.point_code, t.tapped_at)
        current = after or current
        if t is tap:
            mine = verdict
    current, _ = close_due(current, now)
    assert mine is not None  # the tap is in the list
    return mine, current


def _ids(loaded: LoadedRound) -> dict[str, int | None]:
    return {p.checkpoint: p.location_id for p in loaded.points}


def _decision(
    base: TapDecision, verdict: Verdict, loaded: LoadedRound | None, ids: dict[str, int | None]
) -> TapDecision:
    return replace(
        base,
        ok=verdict.ok,
        reason=verdict.reason,
        round_id=loaded.row.id if loaded else None,
        result=verdict.result,
        next_location_id=ids.get(verdict.next_point) if verdict.next_point else None,
    )
