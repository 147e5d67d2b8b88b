"""Rounds and the verdict at the reader (core/rounds.py): P1 §2.3 each round is followed and signed in,
P0 standards (patrol results are kept and published). Simulated time only: every time is T0 + minutes."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.rounds import (
    Point,
    Round,
    Tap,
    Verdict,
    close_due,
    completion_pct,
    judge_all,
    judge_tap,
    lateness_s,
    max_lateness_s,
    next_due,
    next_point,
    replay,
)

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_round() -> Round:
    """A (fixed 1) 0–10 min on time, shuts at 20; B (fixed 2) 10–20, shuts at 30, 2 min walk from the
    previous point; C (any order) 0–50, shuts at 60. Round 0–60 min, grace 10 min, early 5 min."""
    return Round(
        id=1,
        guard="g1",
        starts_at=T0,
        ends_at=at(60),
        grace_s=600,
        makeup=True,
        early_s=300,
        points=(
            Point("A", 1, at(0), at(10), at(20)),
            Point("B", 2, at(10), at(20), at(30), min_gap_s=120),
            Point("C", 0, at(0), at(50), at(60)),
        ),
    )


def signed(*taps: tuple[str, float]) -> Round:
    """The round after these ok sign-ins (asserted ok, so a setup that is refused fails loudly)."""
    rnd: Round | None = make_round()
    for code, minute in taps:
        verdict, rnd = judge_tap(rnd, True, code, at(minute))
        assert verdict.ok, (code, minute, verdict)
    assert rnd is not None
    return rnd


# (case, prior ok sign-ins, on duty, tapped point, tapped minute, expected reason, expected result)
VERDICTS = [
    ("unknown_tag first, before duty and round", [], False, None, -30, "unknown_tag", None),
    ("not_on_duty before no_active_round", [], False, "A", -30, "not_on_duty", None),
    ("no_active_round before the round starts", [], True, "A", -0.1, "no_active_round", None),
    ("no_active_round at end + grace (exclusive)", [], True, "C", 70, "no_active_round", None),
    ("duplicate: same point within the interval", [("A", 1)], True, "A", 1.5, "duplicate", None),
    ("duplicate: an earlier tap within the interval", [("A", 1)], True, "A", 0.5, "duplicate", None),
    ("signed point again after the interval", [("A", 1)], True, "A", 5, "outside_window", None),
    ("checkpoint of the site not on this round", [], True, "X", 1, "outside_window", None),
    ("out_of_order: earlier fixed point still open", [], True, "B", 12, "out_of_order", None),
    ("out_of_order before too_fast", [("C", 11)], True, "B", 12, "out_of_order", None),
    ("too_fast: under the walking time", [("A", 9)], True, "B", 10.5, "too_fast", None),
    ("too_fast before outside_window", [("A", 2)], True, "B", 3, "too_fast", None),
    ("outside_window: before opens - early", [("A", 1)], True, "B", 4.9, "outside_window", None),
    ("outside_window: at closes_at", [("A", 1)], True, "C", 60, "outside_window", None),
    ("outside_window: late point at closes_at", [], True, "A", 20, "outside_window", None),
    ("early: within early_s before opens_at", [("A", 1)], True, "B", 7, None, "early"),
    ("on_time: inside the window", [], True, "A", 1, None, "on_time"),
    ("on_time: at due_at (inclusive)", [], True, "A", 10, None, "on_time"),
    ("late: after due_at, before closes_at", [], True, "A", 15, None, "late"),
    ("any-order point signed before the fixed ones", [], True, "C", 1, None, "on_time"),
    ("a fixed point whose window shut does not block", [], True, "B", 21, None, "late"),
    ("too_fast is against the previous sign-in", [("A", 8)], True, "B", 10, None, "on_time"),
]


@pytest.mark.parametrize(
    ("case", "prior", "on_duty", "code", "minute", "reason", "result"), VERDICTS, ids=[v[0] for v in VERDICTS]
)
def test_verdict_order_and_results_p1_2_3(
    case: str,
    prior: list[tuple[str, float]],
    on_duty: bool,
    code: str | None,
    minute: float,
    reason: str | None,
    result: str | None,
) -> None:
    """P1 §2.3: every tap gets one verdict, first failing check wins, in the documented order."""
    before = signed(*prior)
    verdict, after = judge_tap(before, on_duty, code, at(minute))
    assert verdict.reason == reason
    assert verdict.ok is (reason is None)
    assert verdict.result == result
    assert verdict.point == code
    if reason is not None:
        assert after is before  # a refused tap changes nothing; the caller records it with its verdict
    else:
        assert after is not None and after.state == "in_progress"
        point = after.point(code or "")
        assert point is not None and point.result == result and point.signed_at == at(minute)
        assert after.last_point == code and after.last_signed_at == at(minute)


def test_no_round_at_all_is_no_active_round_p1_2_3() -> None:
    """P1 §2.3: a guard on duty with no round scheduled is told so, not signed in."""
    assert judge_tap(None, True, "A", T0) == (Verdict(ok=False, reason="no_active_round", point="A"), None)


def test_states_scheduled_then_in_progress_p1_2_3() -> None:
    """P1 §2.3: a round is scheduled until its first valid sign-in; a refused tap does not start it."""
    rnd = make_round()
    assert rnd.state == "scheduled"
    _, refused = judge_tap(rnd, True, "B", at(12))
    assert refused is not None and refused.state == "scheduled"
    _, started = judge_tap(rnd, True, "A", at(1))
    assert started is not None and started.state == "in_progress"


def test_condition_travels_with_the_sign_in_p1_2_6() -> None:
    """P1 §2.6: a point found abnormal is recorded with its sign-in."""
    _, rnd = judge_tap(make_round(), True, "A", at(1), condition="abnormal")
    assert rnd is not None and rnd.points[0].condition == "abnormal"


@pytest.mark.parametrize(
    ("prior", "minute", "expected"),
    [
        ([("A", 1)], 1, "B"),  # fixed sequence first
        ([("A", 1), ("B", 12)], 12, "C"),  # then the any-order points
        ([("C", 1)], 1, "A"),
        ([("C", 1)], 21, "B"),  # A's window shut at the tap's time: skip it
        ([("A", 1), ("B", 12), ("C", 14)], 14, None),
    ],
)
def test_next_point_p1_2_3(prior: list[tuple[str, float]], minute: float, expected: str | None) -> None:
    """P1 §2.3: the reader shows where to go next, in the plan's order."""
    assert next_point(signed(*prior), at(minute)) == expected


def test_ok_verdict_names_the_next_point_p1_2_3() -> None:
    verdict, _ = judge_tap(make_round(), True, "A", at(1))
    assert verdict == Verdict(ok=True, point="A", next_point="B", result="on_time")


@pytest.mark.parametrize(
    ("case", "prior", "now", "missed", "state"),
    [
        ("nothing due yet", [], 19.9, [], "scheduled"),
        ("A's window shut", [], 20, ["A"], "scheduled"),
        ("A signed: nothing missed", [("A", 1)], 20, [], "in_progress"),
        ("B shut, C still open", [("A", 1)], 30, ["B"], "in_progress"),
        ("all decided before the end: incomplete", [("C", 1)], 30, ["A", "B"], "incomplete"),
        ("all signed: completed before the end", [("A", 1), ("B", 12), ("C", 14)], 15, [], "completed"),
        ("some signed: incomplete at end + grace", [("A", 1)], 70, ["B", "C"], "incomplete"),
        ("none signed: missed when all windows shut", [], 60, ["A", "B", "C"], "missed"),
    ],
)
def test_close_due_marks_missed_once_p1_2_3(
    case: str, prior: list[tuple[str, float]], now: float, missed: list[str], state: str
) -> None:
    """P1 §2.3 / P0 standards: a point whose window shuts unsigned is missed, alerted exactly once."""
    rnd, newly = close_due(signed(*prior), at(now))
    assert newly == missed
    assert rnd.state == state
    assert all(rnd.point(code).result == "missed" for code in missed)  # type: ignore[union-attr]
    assert close_due(rnd, at(now)) == (rnd, [])  # the second sweep alerts nothing again


def test_close_due_is_idempotent_after_the_end_p1_2_3() -> None:
    ended, newly = close_due(make_round(), at(70))
    assert (newly, ended.state) == (["A", "B", "C"], "missed")
    assert close_due(ended, at(500)) == (ended, [])


def test_point_with_longer_window_is_missed_at_round_end() -> None:
    """A point whose window outlives the round's end + grace is missed with the round (P1 §2.3)."""
    rnd = replace(make_round(), points=(Point("Z", 0, at(0), at(50), at(120)),))
    ended, newly = close_due(rnd, at(70))
    assert (newly, ended.state) == (["Z"], "missed")


@pytest.mark.parametrize(
    ("prior", "sweep", "expected"),
    [
        ([], None, at(20)),  # A shuts first
        ([("A", 1)], None, at(30)),  # then B
        ([("A", 1), ("B", 12)], None, at(60)),  # then C
        ([("A", 1), ("B", 12), ("C", 14)], 15, None),  # ended: nothing due
        ([], 60, None),
    ],
)
def test_next_due(prior: list[tuple[str, float]], sweep: float | None, expected: datetime | None) -> None:
    """The sweeper's next deadline for the round (P1 §2.3 missed points live)."""
    rnd = signed(*prior)
    if sweep is not None:
        rnd, _ = close_due(rnd, at(sweep))
    assert next_due(rnd) == expected


def test_next_due_falls_back_to_end_plus_grace() -> None:
    """P1 §2.3: a round is followed to its end plus grace, even when a window outlives it."""
    rnd = replace(make_round(), points=(Point("Z", 0, at(0), at(50), at(120)),))
    assert next_due(rnd) == at(70)


def test_late_tap_after_the_sweep_still_counts_p1_2_3() -> None:
    """P1 §2.3, judged on the tap's own time: a tap from before A's window shut, arriving after the sweep
    marked A missed (a reader's offline queue), signs A late; an ended round is re-decided."""
    swept, newly = close_due(make_round(), at(25))
    assert newly == ["A"]
    verdict, rnd = judge_tap(swept, True, "A", at(15))
    assert verdict.result == "late" and rnd is not None and rnd.state == "in_progress"
    ended, _ = close_due(make_round(), at(70))
    verdict, rnd = judge_tap(ended, True, "C", at(40))
    assert verdict.ok and rnd is not None and rnd.state == "incomplete"


@pytest.mark.parametrize(
    ("prior", "pct", "total", "worst"),
    [
        ([], 0.0, 0, 0),
        ([("A", 1)], 33.3, 0, 0),
        ([("A", 15), ("B", 22)], 66.7, 420, 300),  # 5 min + 2 min late
        ([("A", 1), ("B", 12), ("C", 14)], 100.0, 0, 0),
    ],
)
def test_completion_and_lateness_p0_standards(
    prior: list[tuple[str, float]], pct: float, total: int, worst: int
) -> None:
    """P0 standards: completion % and lateness are kept per round to publish patrol results."""
    rnd = signed(*prior)
    assert (completion_pct(rnd), lateness_s(rnd), max_lateness_s(rnd)) == (pct, total, worst)


def test_completion_of_a_round_without_points() -> None:
    """P0 standards (completion rate): nothing to walk is nothing left undone."""
    assert completion_pct(replace(make_round(), points=())) == 100.0


TAPS = [
    Tap("A", at(1)),
    Tap("A", at(1.5)),  # duplicate of the first
    Tap("B", at(12)),
    Tap("X", at(13)),  # not on this round
    Tap("C", at(14)),
    Tap(None, at(15)),  # unknown tag
]


def test_replay_is_the_same_in_any_arrival_order_p1_2_3() -> None:
    """P1 §2.3 decided once: two gateways may deliver a guard's taps in any order; re-judged in
    tapped_at order under the round's lock, every order gives the same round."""
    expected = replay(make_round(), TAPS)
    assert expected.state == "in_progress" and completion_pct(expected) == 100.0
    for order in itertools.permutations(TAPS):
        assert replay(make_round(), order) == expected


def test_judge_all_verdicts_in_time_order_p1_2_3() -> None:
    _, verdicts = judge_all(make_round(), reversed(TAPS))
    assert [v.reason for v in verdicts] == [None, "duplicate", None, "outside_window", None, "unknown_tag"]


def test_arrival_order_matters_without_replay() -> None:
    """Why the caller must replay (P1 §2.3): judged as they arrive, B before A is refused out_of_order."""
    verdict, _ = judge_tap(make_round(), True, "B", at(12))
    assert verdict.reason == "out_of_order"
    assert replay(make_round(), [Tap("B", at(12)), Tap("A", at(1))]).point("B").result == "on_time"  # type: ignore[union-attr]
