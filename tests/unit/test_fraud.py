"""Fraud signals (core/fraud.py, issue 8 item 8). P0 §1: guards wear visible identification, so who
tapped, where, must be known; P1 §2.3: each round is followed and signed in. Simulated time only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.fraud import (
    KIND_TEXT,
    KINDS,
    TapRecord,
    bursts,
    clock_skew,
    cloned_tags,
    fixed_routine,
    outside_rounds,
    signals_for_round,
    summarise,
    too_fast,
)
from core.patrol_plans import Place

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
#: walking_gap_s: A→A2 20 s (same floor), A→B 80 s (4 floors up), A→C 140 s (other building, 2 floors up).
PLACES = {"A": Place("b1", 1), "A2": Place("b1", 1), "B": Place("b1", 5), "C": Place("b2", 3), "X": None}


def tap(s: float, point: str, *, guard: str = "g1", reader: str = "r1", rnd: int | None = 1, **kw: object) -> TapRecord:
    at = T0 + timedelta(seconds=s)
    received = kw.pop("received_at", at)
    assert isinstance(received, datetime)
    return TapRecord(guard, reader, point, PLACES[point], at, received, round_id=rnd, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("taps", "expected"),
    [
        ([tap(0, "A"), tap(100, "B")], []),  # 100 s ≥ 80 s walk
        ([tap(0, "A"), tap(60, "B")], [("warning", 60, 80)]),
        ([tap(0, "A"), tap(30, "B")], [("serious", 30, 80)]),  # half the walk or less
        ([tap(0, "A"), tap(100, "C")], [("warning", 100, 140)]),
        ([tap(0, "A"), tap(10, "A2")], [("serious", 10, 20)]),
        ([tap(0, "A"), tap(5, "A")], []),  # a double tap, not a walk
        ([tap(0, "A"), tap(10, "X")], [("serious", 10, 20)]),  # unknown place: the same-floor minimum
        ([tap(0, "A"), tap(30, "B", ok=False, reason="too_fast")], [("serious", 30, 80)]),  # refused, still shown
        ([tap(0, "A"), tap(30, "B", guard="g2")], []),  # two guards
        ([tap(0, "A"), tap(30, "B", reader="r2")], []),  # two readers: cloned_tags' business
        ([tap(0, "A"), tap(30, "B", clock_skew_s=-9000)], []),  # a time not believed
    ],
)
def test_too_fast_p1_2_3(taps: list[TapRecord], expected: list[tuple[str, int, int]]) -> None:
    """P1 §2.3: a round is walked; sign-ins closer than the walk are flagged, accepted or not."""
    got = too_fast(taps)
    assert [(s.severity, s.detail["took_s"], s.detail["need_s"]) for s in got] == expected
    assert all(s.kind == "too_fast" and s.text.zh and s.text.en for s in got)


def test_bursts_of_checkpoints_from_one_reader() -> None:
    """P0 §1: four checkpoints from one reader within a minute: a guard carrying tags or a tag board."""
    taps = [tap(i * 10, p) for i, p in enumerate(["A", "B", "C", "X"])]
    [sig] = bursts(taps)
    assert (sig.kind, sig.detail["by"], sig.detail["count"], sig.detail["span_s"]) == ("burst", "checkpoints", 4, 30)
    assert sig.at == T0 and sig.round_id == 1
    assert bursts(taps, min_taps=5) == []
    assert bursts(taps, window_s=20) == []


def test_bursts_of_badges_at_one_checkpoint() -> None:
    """P0 §1: who tapped must be known: four guards' badges at one fixed reader in a minute."""
    taps = [tap(i * 15, "A", guard=f"g{i}", reader="fixed-A") for i in range(4)]
    sigs = bursts(taps)
    assert [(s.detail["by"], s.detail["items"]) for s in sigs] == [("guards", "g0,g1,g2,g3")]


def test_bursts_count_distinct_items_and_do_not_overlap() -> None:
    same = [tap(i, "A") for i in range(10)]
    assert bursts(same) == []  # one checkpoint tapped ten times is a double tap, not a board
    two = [tap(i * 10, p) for i, p in enumerate(["A", "B", "C", "X"])] + [
        tap(200 + i * 10, p) for i, p in enumerate(["A", "B", "C", "X"])
    ]
    assert len(bursts(two)) == 2


def test_outside_rounds() -> None:
    taps = [tap(0, "A"), tap(10, "B", rnd=None, ok=False, reason="no_active_round")]
    [sig] = outside_rounds(taps)
    got = (sig.kind, sig.severity, sig.round_id, sig.detail["reason"])
    assert got == ("outside_round", "info", None, "no_active_round")


@pytest.mark.parametrize(
    ("taps", "expected"),
    [
        # a guard's badge read at two fixed readers in two buildings 60 s apart (140 s walk)
        ([tap(0, "A", reader="fA"), tap(60, "C", reader="fC")], [("g1", 60, 140)]),
        ([tap(0, "A", reader="fA"), tap(200, "C", reader="fC")], []),
        ([tap(0, "A", reader="fA"), tap(5, "A2", reader="fA2")], []),  # same place: no distance to prove
        ([tap(0, "A", reader="fA"), tap(5, "X", reader="fX")], []),  # unknown place
        # checkpoint C read by r2 at 60 s, 10 s after r2 read A (140 s walk), while r1 read C too
        (
            [tap(0, "C", guard="g1"), tap(50, "A", guard="g2", reader="r2"), tap(60, "C", guard="g2", reader="r2")],
            [("C", 10, 140)],
        ),
        # the same, but r2 took long enough between A and C: two honest visits
        ([tap(0, "C", guard="g1"), tap(0, "A", guard="g2", reader="r2"), tap(150, "C", guard="g2", reader="r2")], []),
    ],
)
def test_cloned_tags_p0_1(taps: list[TapRecord], expected: list[tuple[str, int, int]]) -> None:
    """P0 §1: who tapped must be known; a tag in two places at once is a copy (or a lent badge)."""
    got = cloned_tags(taps)
    assert [(s.detail["tag"], s.detail["took_s"], s.detail["need_s"]) for s in got] == expected
    assert all(s.severity == "serious" for s in got)


def test_clock_skew_per_reader() -> None:
    taps = [
        tap(0, "A", reader="r1", clock_skew_s=-90000),
        tap(10, "B", reader="r1", clock_skew_s=-100000),
        tap(0, "A", reader="r2", received_at=T0 - timedelta(seconds=600)),  # ts 600 s ahead of receipt
        tap(0, "A", reader="r3", received_at=T0 - timedelta(seconds=60)),  # within the limit
        tap(0, "A", reader="r4", received_at=T0 + timedelta(hours=3)),  # behind: an offline queue looks the same
    ]
    got = {s.detail["reader"]: s.detail["skew_s"] for s in clock_skew(taps, limit_s=120)}
    assert got == {"r1": -100000, "r2": 600}


@pytest.mark.parametrize(
    ("orders", "signals"),
    [
        ([["A", "B", "C"]] * 5, 1),
        ([["A", "B", "C"]] * 4, 0),  # too few rounds to say
        ([["A", "C", "B"]] + [["A", "B", "C"]] * 5, 1),  # only the last five count
        ([["A", "B", "C"]] * 4 + [["B", "A", "C"]], 0),
        ([["A"]] * 6, 0),  # one point cannot vary
    ],
)
def test_fixed_routine_p1_2_3(orders: list[list[str]], signals: int) -> None:
    """P1 §2.3: a plan asking for any order is walked the same way every time: predictable."""
    got = fixed_routine(orders, guard="g1", at=T0, round_id=7)
    assert len(got) == signals
    assert all(s.round_id == 7 and s.detail["order"] == "A,B,C" for s in got)


def test_signals_for_round_keeps_its_own_and_summarises() -> None:
    taps = [
        tap(0, "A"),
        tap(30, "B"),  # too fast, round 1
        tap(0, "C", guard="g2", reader="r2", rnd=2),
        tap(10, "X", guard="g2", reader="r2", rnd=2),  # too fast, round 2: not ours
        tap(500, "C", rnd=None),  # outside any round: not a round's signal
    ]
    got = signals_for_round(1, taps, rounds_orders=[["A", "B"]] * 5, guard="g1", at=T0 + timedelta(hours=1))
    assert [s.kind for s in got] == ["too_fast", "fixed_routine"]
    assert signals_for_round(1, taps, rounds_orders=[["A", "B"]] * 5) == got[:1]  # no guard/at: no routine check
    assert summarise(got) == {"too_fast": 1, "fixed_routine": 1}
    assert summarise([]) == {}


def test_deterministic_whatever_the_input_order() -> None:
    taps = [tap(0, "A"), tap(30, "B"), tap(40, "C"), tap(45, "X"), tap(50, "A", reader="r2", guard="g2")]
    assert signals_for_round(1, taps) == signals_for_round(1, list(reversed(taps)))


def test_every_kind_has_both_languages() -> None:
    assert set(KIND_TEXT) == set(KINDS)
    assert all(t.zh and t.en and t.zh != t.en for t in KIND_TEXT.values())
