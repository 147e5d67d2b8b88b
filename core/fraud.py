"""Fraud signals per round (issue 8 item 8): shown to supervisors, never silently "fixed".

P0 §1 (guards wear visible identification: who tapped must be known) and P1 §2.3 (each round is
followed and signed in) only hold if a sign-in means the guard stood at the checkpoint. These rules
look for taps that say otherwise. A signal is a hint for a person to look at, not a verdict: nothing
here refuses, deletes or corrects a tap, and an accepted tap is looked at as closely as a refused one.

Pure and deterministic: frozen values in, signals out, sorted by time then kind; no clock, no I/O.
A tap whose reader clock was not believed (`clock_skew_s` set) has no trustworthy time, so the
timing rules (too fast, bursts, cloned tags) skip it; `clock_skew` reports the reader instead.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Literal

from core.patrol_plans import GapRules, Place, walking_gap_s
from core.procedures import Text

Kind = Literal["too_fast", "burst", "outside_round", "cloned_tag", "clock_skew", "fixed_routine"]
Severity = Literal["info", "warning", "serious"]
KINDS: tuple[Kind, ...] = ("too_fast", "burst", "outside_round", "cloned_tag", "clock_skew", "fixed_routine")
#: What a supervisor reads in a list of signals, per kind (the signal's own `text` adds the numbers).
KIND_TEXT: dict[Kind, Text] = {
    "too_fast": Text(zh="签到过快", en="Taps too fast"),
    "burst": Text(zh="短时间内集中签到", en="Burst of taps"),
    "outside_round": Text(zh="巡查任务外签到", en="Tap outside any round"),
    "cloned_tag": Text(zh="疑似复制标签", en="Possibly cloned tag"),
    "clock_skew": Text(zh="读卡器时钟偏差", en="Reader clock skew"),
    "fixed_routine": Text(zh="巡查顺序一成不变", en="Route order never varies"),
}
#: Two readers reading one tag further apart than this are two ordinary visits, not a copy.
CLONE_WITHIN_S = 300
#: A reader's `ts` ahead of the receipt time by more than this is a wrong clock (nothing legitimate lies ahead).
SKEW_LIMIT_S = 120

_NOWHERE = Place(None, None)


@dataclass(frozen=True, slots=True)
class TapRecord:
    """One stored tap. `place`: where it happened (the checkpoint's place for a handheld reader, the
    reader's own place for a fixed one); `tapped_at`: the time the rules use (core.device_clock)."""

    guard: str
    reader: str
    checkpoint: str
    place: Place | None
    tapped_at: datetime
    received_at: datetime
    clock_skew_s: int | None = None
    round_id: int | None = None
    ok: bool = True
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """One thing a supervisor should look at; `detail` carries the numbers, `text` says it in zh and en."""

    kind: Kind
    severity: Severity
    round_id: int | None
    guard: str
    at: datetime
    detail: dict[str, str | int | None] = field(hash=False)
    text: Text


def _timed(taps: Iterable[TapRecord]) -> list[TapRecord]:
    """Taps with a believable time, in a deterministic order."""
    return sorted((t for t in taps if t.clock_skew_s is None), key=lambda t: (t.tapped_at, t.reader, t.checkpoint))


def _gap(a: TapRecord, b: TapRecord) -> int:
    return int((b.tapped_at - a.tapped_at).total_seconds())


def too_fast(taps: Iterable[TapRecord], rules: GapRules | None = None) -> list[Signal]:
    """Consecutive taps of one guard on one reader at two checkpoints, closer in time than walking
    allows (`walking_gap_s`), accepted or not. Half the walk or less is serious. Two readers are
    `cloned_tags`' business; the same checkpoint twice is a double tap, not a walk."""
    by_guard: dict[tuple[str, str], list[TapRecord]] = defaultdict(list)
    for t in _timed(taps):
        by_guard[(t.guard, t.reader)].append(t)
    out: list[Signal] = []
    for seq in by_guard.values():
        for prev, nxt in pairwise(seq):
            if prev.checkpoint == nxt.checkpoint:
                continue
            need, took = walking_gap_s(prev.place or _NOWHERE, nxt.place or _NOWHERE, rules), _gap(prev, nxt)
            if took < need:
                out.append(
                    Signal(
                        "too_fast",
                        "serious" if took * 2 <= need else "warning",
                        nxt.round_id,
                        nxt.guard,
                        nxt.tapped_at,
                        {"from": prev.checkpoint, "to": nxt.checkpoint, "took_s": took, "need_s": need},
                        Text(
                            zh=f"{prev.checkpoint} → {nxt.checkpoint} 仅用 {took} 秒，步行至少需 {need} 秒",
                            en=f"{prev.checkpoint} → {nxt.checkpoint} in {took} s; walking takes at least {need} s",
                        ),
                    )
                )
    return _sorted(out)


def bursts(taps: Iterable[TapRecord], window_s: int = 60, min_taps: int = 4) -> list[Signal]:
    """`min_taps` or more different checkpoints read by one reader within `window_s` (a guard carrying
    tags or a tag board), or as many different guards' badges read at one checkpoint (one person
    tapping for the others). One signal per burst, at its first tap."""
    timed = _timed(taps)
    by_reader: dict[str, list[TapRecord]] = defaultdict(list)
    by_point: dict[str, list[TapRecord]] = defaultdict(list)
    for t in timed:
        by_reader[t.reader].append(t)
        by_point[t.checkpoint].append(t)
    out: list[Signal] = []
    for reader, seq in by_reader.items():
        out += _bursts_in(seq, "checkpoints", lambda t: t.checkpoint, reader, window_s, min_taps)
    for point, seq in by_point.items():
        out += _bursts_in(seq, "guards", lambda t: t.guard, point, window_s, min_taps)
    return _sorted(out)


def _bursts_in(
    seq: list[TapRecord], what: str, key: Callable[[TapRecord], str], where: str, window_s: int, min_taps: int
) -> list[Signal]:
    out: list[Signal] = []
    i = 0
    while i < len(seq):
        j = i
        while j + 1 < len(seq) and _gap(seq[i], seq[j + 1]) <= window_s:
            j += 1
        distinct = sorted({key(t) for t in seq[i : j + 1]})
        if len(distinct) < min_taps:
            i += 1
            continue
        first, span = seq[i], _gap(seq[i], seq[j])
        zh_what, en_what = ("个签到点", "checkpoints") if what == "checkpoints" else ("名保安", "guards")
        out.append(
            Signal(
                "burst",
                "warning",
                first.round_id,
                first.guard,
                first.tapped_at,
                {"by": what, "where": where, "count": len(distinct), "span_s": span, "items": ",".join(distinct)},
                Text(
                    zh=f"{where}：{span} 秒内签到 {len(distinct)} {zh_what}",
                    en=f"{where}: {len(distinct)} {en_what} tapped within {span} s",
                ),
            )
        )
        i = j + 1
    return out


def outside_rounds(taps: Iterable[TapRecord]) -> list[Signal]:
    """Every tap that belongs to no round (no plan asked for it: who tapped, and why?)."""
    return _sorted(
        Signal(
            "outside_round",
            "info",
            None,
            t.guard,
            t.tapped_at,
            {"checkpoint": t.checkpoint, "reader": t.reader, "reason": t.reason},
            Text(zh=f"{t.checkpoint} 的签到不属于任何巡查任务", en=f"Tap at {t.checkpoint} belongs to no round"),
        )
        for t in taps
        if t.round_id is None
    )


def cloned_tags(
    taps: Iterable[TapRecord], rules: GapRules | None = None, within_s: int = CLONE_WITHIN_S
) -> list[Signal]:
    """A tag in two places at once. A guard's badge read by two readers at known, different places
    closer in time than walking allows; or a checkpoint read by two readers within `within_s` when
    one of them was, just before or after, somewhere it could not have walked from or to in time (that
    reader's guard is then also `too_fast`: the second reader makes it a copy, not only a rush)."""
    timed = _timed(taps)
    out: list[Signal] = []
    by_guard: dict[str, list[TapRecord]] = defaultdict(list)
    by_reader: dict[str, list[TapRecord]] = defaultdict(list)
    for t in timed:
        by_guard[t.guard].append(t)
        by_reader[t.reader].append(t)
    for seq in by_guard.values():
        for a, b in pairwise(seq):
            if a.reader != b.reader and a.place and b.place and a.place != b.place:
                need, took = walking_gap_s(a.place, b.place, rules), _gap(a, b)
                if took < need:
                    out.append(_clone(b, b.guard, (a.reader, b.reader), took, need, a.checkpoint))
    readers_of: dict[str, list[TapRecord]] = defaultdict(list)
    for t in timed:
        readers_of[t.checkpoint].append(t)
    for point_taps in readers_of.values():
        for t in point_taps:
            others = [o.reader for o in point_taps if o.reader != t.reader and abs(_gap(o, t)) <= within_s]
            if not others or t.place is None:
                continue
            seq = by_reader[t.reader]
            k = seq.index(t)
            for n in (seq[k - 1] if k else None, seq[k + 1] if k + 1 < len(seq) else None):
                if n is None or n.place is None or n.place == t.place:
                    continue
                need, took = walking_gap_s(n.place, t.place, rules), abs(_gap(n, t))
                if took < need:
                    out.append(_clone(t, t.checkpoint, (t.reader, min(others)), took, need, n.checkpoint))
                    break
    return _sorted(out)


def _clone(t: TapRecord, tag: str, readers: tuple[str, str], took: int, need: int, other: str) -> Signal:
    return Signal(
        "cloned_tag",
        "serious",
        t.round_id,
        t.guard,
        t.tapped_at,
        {"tag": tag, "readers": ",".join(readers), "other_place": other, "took_s": took, "need_s": need},
        Text(
            zh=f"{tag} 被 {readers[0]} 和 {readers[1]} 读取，与 {other} 相隔 {took} 秒（步行需 {need} 秒）",
            en=f"{tag} read by {readers[0]} and {readers[1]}, {took} s from {other} (walking takes {need} s)",
        ),
    )


def clock_skew(taps: Iterable[TapRecord], limit_s: int = SKEW_LIMIT_S) -> list[Signal]:
    """One signal per reader whose clock was not believed (`clock_skew_s` set) or whose `ts` ran
    ahead of the receipt time by more than `limit_s`. A clock behind cannot be told from an offline
    queue, so only `clock_skew_s` reports it. Reported at the reader's first such tap, worst skew."""
    worst: dict[str, tuple[TapRecord, int]] = {}
    for t in sorted(taps, key=lambda t: (t.received_at, t.reader)):
        ahead = int((t.tapped_at - t.received_at).total_seconds())
        skew = t.clock_skew_s if t.clock_skew_s is not None else (ahead if ahead > limit_s else None)
        if skew is None:
            continue
        first, prior = worst.get(t.reader, (t, 0))
        worst[t.reader] = (first, skew if abs(skew) > abs(prior) else prior)
    return _sorted(
        Signal(
            "clock_skew",
            "warning",
            first.round_id,
            first.guard,
            first.received_at,
            {"reader": reader, "skew_s": skew},
            Text(
                zh=f"读卡器 {reader} 时钟偏差 {skew} 秒，请校时",
                en=f"Reader {reader} clock off by {skew} s: set its time",
            ),
        )
        for reader, (first, skew) in worst.items()
    )


def fixed_routine(
    rounds_orders: Sequence[Sequence[str]],
    *,
    guard: str,
    at: datetime,
    min_rounds: int = 5,
    round_id: int | None = None,
) -> list[Signal]:
    """A plan asks for any order (order 0 points), yet the guard's last `min_rounds` rounds (oldest
    first, each the any-order points in the order visited) went the same way: a predictable round.
    Fewer than two points cannot vary, so they never signal."""
    last = [list(o) for o in rounds_orders[-min_rounds:]]
    if len(last) < min_rounds or len(last[0]) < 2 or any(o != last[0] for o in last):
        return []
    route = " → ".join(last[0])
    return [
        Signal(
            "fixed_routine",
            "info",
            round_id,
            guard,
            at,
            {"rounds": min_rounds, "order": ",".join(last[0])},
            Text(
                zh=f"最近 {min_rounds} 次巡查顺序相同（{route}），计划要求随机顺序",
                en=f"Last {min_rounds} rounds all went {route}; the plan asks for a random order",
            ),
        )
    ]


def signals_for_round(
    round_id: int,
    taps: Iterable[TapRecord],
    rules: GapRules | None = None,
    *,
    limit_s: int = SKEW_LIMIT_S,
    rounds_orders: Sequence[Sequence[str]] = (),
    guard: str | None = None,
    at: datetime | None = None,
    min_rounds: int = 5,
) -> list[Signal]:
    """Every signal about one round. `taps`: the round's taps and those around it (other readers,
    the same minutes), so bursts and copies across readers show. `rounds_orders`, `guard`, `at`: the
    guard's recent any-order sequences ending with this round, for a random-order plan only."""
    seen = list(taps)
    found = too_fast(seen, rules) + bursts(seen) + cloned_tags(seen, rules) + clock_skew(seen, limit_s)
    if rounds_orders and guard is not None and at is not None:
        found += fixed_routine(rounds_orders, guard=guard, at=at, min_rounds=min_rounds, round_id=round_id)
    return _sorted(s for s in found if s.round_id == round_id)


def summarise(signals: Iterable[Signal]) -> dict[str, int]:
    """Count by kind, in `KINDS` order, kinds without signals left out."""
    counts = Counter(s.kind for s in signals)
    return {k: counts[k] for k in KINDS if counts[k]}


def _sorted(signals: Iterable[Signal]) -> list[Signal]:
    return sorted(signals, key=lambda s: (s.at, KINDS.index(s.kind), s.guard, str(sorted(s.detail.items()))))
