"""Duty roster, escalation chain, first responder and emergency muster (core/escalation.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from core.escalation import (
    MAX_REMINDERS,
    DutyShift,
    EscalationPosition,
    GuardPosition,
    LevelSpec,
    RosterEntrySpec,
    RosterSpec,
    escalation_active,
    floor_distance,
    level_recipients,
    muster_recipients,
    nearest_guard,
    next_step,
    on_duty,
)
from core.tickets import TicketState

SH = ZoneInfo("Asia/Shanghai")
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
ALL_DAYS = frozenset(range(1, 8))


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time in the week of Monday 2026-11-30 (day 1) … Sunday 2026-12-06 (day 7),
    given to the rules in UTC, as the database and the clock hand it over."""
    return (datetime(2026, 11, 29, hour, minute, tzinfo=SH) + timedelta(days=day)).astimezone(UTC)


ROSTER = [
    DutyShift("g_day", "security", "guard", WEEKDAYS, time(8), time(16)),
    DutyShift("g_night", "security", "guard", frozenset({1}), time(22), time(6)),  # Monday night → Tuesday
    DutyShift("g_sunday", "security", "guard", frozenset({7}), time(23), time(7)),  # Sunday night → Monday
    DutyShift("leader", "security", "shift_leader", WEEKDAYS, time(8), time(20)),
    DutyShift("tech", "engineering", "technician", WEEKDAYS, time(8), time(17)),
    DutyShift("eng_sup", "engineering", "supervisor", WEEKDAYS, time(9), time(18)),
    DutyShift("sec_sup", "security", "supervisor", WEEKDAYS, time(9), time(18)),
    DutyShift("boss", "management", "manager", ALL_DAYS, time(0), time(0)),  # always reachable
]


@pytest.mark.parametrize(
    ("case", "at", "expected"),
    [
        ("Monday morning", local(1, 9), ["g_day", "leader", "tech", "eng_sup", "sec_sup", "boss"]),
        ("shift start is inclusive", local(1, 8), ["g_day", "leader", "tech", "boss"]),
        ("shift end is exclusive", local(1, 16), ["leader", "tech", "eng_sup", "sec_sup", "boss"]),
        ("Monday night shift starts", local(1, 22, 30), ["g_night", "boss"]),
        ("crosses midnight into Tuesday", local(2, 3), ["g_night", "boss"]),
        ("ends Tuesday 06:00", local(2, 6), ["boss"]),
        ("Monday early is not Monday's night shift", local(1, 3), ["g_sunday", "boss"]),
        ("Sunday night wraps to Monday", local(1, 6, 59), ["g_sunday", "boss"]),
        ("Saturday", local(6, 12), ["boss"]),
        ("24-hour shift at midnight", local(4, 0), ["boss"]),
    ],
)
def test_on_duty_reads_the_site_wall_clock_and_shifts_cross_midnight(
    case: str, at: datetime, expected: list[str]
) -> None:
    assert [s.staff_code for s in on_duty(ROSTER, at, SH)] == expected, case


def test_on_duty_takes_a_zone_name_and_refuses_naive_times() -> None:
    assert [s.staff_code for s in on_duty(ROSTER, local(2, 3), "Asia/Shanghai")] == ["g_night", "boss"]
    assert [s.staff_code for s in on_duty(ROSTER, local(2, 3), UTC)] != ["g_night", "boss"]
    with pytest.raises(ValueError, match="aware"):
        on_duty(ROSTER, datetime(2026, 12, 1, 3), SH)


@pytest.mark.parametrize(
    ("at", "departments", "level", "expected"),
    [
        (local(1, 10), ["engineering"], "on_duty", ["tech", "eng_sup"]),
        (local(1, 10), ["security"], "on_duty", ["g_day", "leader", "sec_sup"]),
        (local(1, 10), ["security", "engineering"], "shift_leader", ["leader"]),
        (local(1, 10), ["engineering"], "shift_leader", []),  # engineering has no shift leader: skipped
        (local(1, 10), ["engineering"], "supervisor", ["eng_sup"]),
        (local(1, 10), ["security"], "manager", ["boss"]),  # P5 §2.3: the manager commands, any department
        (local(2, 3), ["security"], "supervisor", []),
        (local(2, 3), ["security"], "unknown_level", []),
    ],
)
def test_p5_2_3_level_recipients_by_position_and_department(
    at: datetime, departments: list[str], level: str, expected: list[str]
) -> None:
    """P5 §2.3: the manager commands; supervisors and shift leaders carry out; on-duty staff act."""
    assert level_recipients(ROSTER, at, SH, departments)(level) == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (local(1, 10), ["g_day", "leader"]),
        (local(2, 3), ["g_night"]),
        (local(6, 12), []),
    ],
)
def test_p5_1_muster_calls_every_guard_on_duty(at: datetime, expected: list[str]) -> None:
    """P5 §1 emergency muster: all guards on duty (shift leaders too), nobody else, nobody off duty."""
    roster = [*ROSTER, DutyShift("g_day", "security", "guard", WEEKDAYS, time(9), time(12))]  # listed once
    assert muster_recipients(roster, at, SH) == expected


# --- roster: the site file section ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("mon-fri", {1, 2, 3, 4, 5}),
        ("1-5", {1, 2, 3, 4, 5}),
        ("fri-mon", {5, 6, 7, 1}),
        ("daily", set(range(1, 8))),
        ("sat, sun", {6, 7}),
        ([1, 3, "friday"], {1, 3, 5}),
        (7, {7}),
    ],
)
def test_roster_days_forms(days: object, expected: set[int]) -> None:
    entry = RosterEntrySpec.model_validate({"staff": "g01", "days": days, "from": "08:00", "to": "16:00"})
    assert entry.days == frozenset(expected)


def test_roster_section_from_yaml_builds_duty_shifts() -> None:
    text = (
        "roster:\n"
        '  - {staff: g01, days: mon-fri, from: "22:00", to: "06:00"}\n'
        '  - {staff: m1, days: daily, from: "00:00", to: "24:00"}\n'
    )
    spec = RosterSpec.model_validate(yaml.safe_load(text)["roster"])
    shifts = spec.shifts({"g01": ("security", "guard"), "m1": ("management", "manager")})
    assert shifts[0] == DutyShift("g01", "security", "guard", WEEKDAYS, time(22), time(6))
    assert (shifts[1].start, shifts[1].end) == (time(0), time(0))  # 24 hours
    assert [s.staff_code for s in on_duty(shifts, local(6, 12), SH)] == ["m1"]


@pytest.mark.parametrize(
    ("entry", "hint"),
    [
        ("{staff: g01, days: mon-fri, from: 22:00, to: '06:00'}", 'write the time in quotes, e.g. "22:00"'),
        ("{staff: g01, days: mon-fri, from: '25:00', to: '06:00'}", 'write "HH:MM"'),
        ("{staff: g01, days: mon-fri, from: '24:30', to: '06:00'}", 'write "HH:MM"'),
        ("{staff: g01, days: funday, from: '08:00', to: '16:00'}", "1..7 (1 = Monday)"),
        ("{staff: g01, days: [8], from: '08:00', to: '16:00'}", "1..7 (1 = Monday)"),
        ("{staff: g01, days: [], from: '08:00', to: '16:00'}", "`days` is empty"),
        ("{staff: g01, days: mon, from: '08:00', to: '16:00', post: gate}", "Extra inputs"),
        ("{staff: 'g 01', days: mon, from: '08:00', to: '16:00'}", "pattern"),
    ],
)
def test_roster_errors_say_what_to_change(entry: str, hint: str) -> None:
    with pytest.raises(ValidationError) as err:
        RosterSpec.model_validate([yaml.safe_load(entry)])
    assert hint in str(err.value)


def test_roster_refuses_staff_not_in_the_staff_list() -> None:
    spec = RosterSpec.model_validate([{"staff": "ghost", "days": "daily", "from": "08:00", "to": "16:00"}])
    with pytest.raises(ValueError, match=r"roster\[0\]: staff `ghost` is not in `staff:`"):
        spec.shifts({"g01": ("security", "guard")})


# --- escalation ---------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
CHAIN = [
    LevelSpec("on_duty", wait_min=10, reminders=2, reminder_every_min=3),
    LevelSpec("shift_leader", wait_min=10),
    LevelSpec("supervisor", wait_min=15, reminders=1, reminder_every_min=5),
    LevelSpec("manager", wait_min=30, reminders=5, reminder_every_min=10),  # only 2 fit in 30 min
]
EVERYONE = {"on_duty": ["g1", "g2"], "shift_leader": ["l1"], "supervisor": ["s1"], "manager": ["m1"]}


def people(table: dict[str, list[str]]) -> Callable[[str], list[str]]:
    return lambda level: list(table.get(level, []))


def mins(at: datetime | None) -> float | None:
    return None if at is None else (at - T0).total_seconds() / 60


def run(table: dict[str, list[str]]) -> list[tuple[float | None, str | None, bool, list[str], list[str]]]:
    """Call next_step at each due time, as the deadline sweeper does, until the chain ends."""
    log: list[tuple[float | None, str | None, bool, list[str], list[str]]] = []
    now: datetime | None = T0
    position = None
    while now is not None:
        step = next_step(CHAIN, position, people(table), now)
        log.append((mins(now), step.level, step.reminder, step.recipients, step.skipped))
        assert len(log) < 50, "escalation must end"
        position, now = step.position, step.due_at
    return log


def test_full_chain_notifies_reminds_within_the_wait_then_moves_up_and_stops() -> None:
    assert run(EVERYONE) == [
        (0, "on_duty", False, ["g1", "g2"], []),
        (3, "on_duty", True, ["g1", "g2"], []),
        (6, "on_duty", True, ["g1", "g2"], []),
        (10, "shift_leader", False, ["l1"], []),
        (20, "supervisor", False, ["s1"], []),
        (25, "supervisor", True, ["s1"], []),
        (35, "manager", False, ["m1"], []),
        (45, "manager", True, ["m1"], []),
        (55, "manager", True, ["m1"], []),  # bounded by the wait, not 5 reminders; then nothing more
    ]


def test_levels_with_nobody_on_duty_are_skipped_at_once_and_named() -> None:
    log = run({"on_duty": [], "shift_leader": [], "supervisor": ["s1"], "manager": []})
    assert log == [
        (0, "supervisor", False, ["s1"], ["on_duty", "shift_leader"]),
        (5, "supervisor", True, ["s1"], []),
        (15, None, False, [], ["manager"]),  # exhausted: nobody left, and it stops
    ]


def test_nobody_on_duty_anywhere_ends_at_once_with_every_level_skipped() -> None:
    step = next_step(CHAIN, None, people({}), T0)
    assert (step.exhausted, step.recipients, step.due_at, step.position) == (True, [], None, None)
    assert step.skipped == ["on_duty", "shift_leader", "supervisor", "manager"]


def test_a_late_call_skips_missed_reminders_and_moves_up() -> None:
    """The gateway was down past the wait: no burst of stale reminders."""
    step = next_step(CHAIN, EscalationPosition(0, T0), people(EVERYONE), T0 + timedelta(minutes=40))
    assert (step.level, step.reminder, step.recipients) == ("shift_leader", False, ["l1"])
    assert step.due_at == T0 + timedelta(minutes=50)


def test_an_early_call_sends_nothing_and_says_when_to_come_back() -> None:
    position = EscalationPosition(1, T0)
    step = next_step(CHAIN, position, people(EVERYONE), T0 + timedelta(minutes=4))
    assert (step.level, step.recipients, step.position, mins(step.due_at)) == ("shift_leader", [], position, 10)


def test_an_early_call_before_a_reminder_sends_nothing() -> None:
    position = EscalationPosition(0, T0, reminders_sent=1)
    step = next_step(CHAIN, position, people(EVERYONE), T0 + timedelta(minutes=5))
    assert (step.level, step.reminder, step.recipients, step.position, mins(step.due_at)) == (
        "on_duty",
        False,
        [],
        position,
        6,
    )


def test_reminder_when_the_level_emptied_moves_up_at_once() -> None:
    step = next_step(CHAIN, EscalationPosition(0, T0), people({**EVERYONE, "on_duty": []}), T0 + timedelta(minutes=3))
    assert (step.level, step.reminder, step.skipped) == ("shift_leader", False, ["on_duty"])


def test_after_the_last_level_it_stays_stopped() -> None:
    done = EscalationPosition(3, T0, reminders_sent=2)
    for later in (0, 60, 600):
        step = next_step(CHAIN, done, people(EVERYONE), T0 + timedelta(minutes=later))
        assert (step.exhausted, step.recipients, step.due_at) == (True, [], None)


def test_recipients_are_listed_once() -> None:
    step = next_step(CHAIN, None, people({"on_duty": ["g1", "g2", "g1"]}), T0)
    assert step.recipients == ["g1", "g2"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wait_min": 0}, "at least 1 minute"),
        ({"wait_min": 5, "reminder_every_min": 0}, "at least 1 minute"),
        ({"wait_min": 5, "reminders": MAX_REMINDERS + 1}, "reminders must be 0..5"),
        ({"wait_min": 5, "reminders": -1}, "reminders must be 0..5"),
    ],
)
def test_levels_are_bounded(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LevelSpec("on_duty", **kwargs)


@pytest.mark.parametrize(
    ("state", "active"),
    [(TicketState.OPEN, True), (TicketState.ACKNOWLEDGED, False), (TicketState.CLOSED, False)],
)
def test_acknowledgement_stops_the_escalation(state: TicketState, active: bool) -> None:
    assert escalation_active(state) is active


# --- first responder ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "distance"), [(1, 1, 0), (1, 5, 4), (-1, 1, 1), (-2, 3, 4), (5, 1, 4)])
def test_floor_distance_has_no_floor_zero(a: int, b: int, distance: int) -> None:
    assert floor_distance(a, b) == distance


SEEN_EARLY = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
SEEN_LATE = datetime(2026, 11, 30, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("case", "guards", "building", "floor", "expected"),
    [
        ("nobody", [], "A", 3, None),
        (
            "same building beats a nearer floor elsewhere",
            [GuardPosition("b", "B", 3, SEEN_LATE), GuardPosition("a", "A", 12, SEEN_EARLY)],
            "A",
            3,
            "a",
        ),
        (
            "nearest floor in the building",
            [GuardPosition("far", "A", 9, SEEN_LATE), GuardPosition("near", "A", 4, SEEN_EARLY)],
            "A",
            3,
            "near",
        ),
        (
            "basement -1 is next to the ground floor",
            [GuardPosition("up", "A", 3, SEEN_LATE), GuardPosition("down", "A", -1, SEEN_EARLY)],
            "A",
            1,
            "down",
        ),
        (
            "equal distance: most recent sign-in",
            [GuardPosition("old", "A", 2, SEEN_EARLY), GuardPosition("new", "A", 4, SEEN_LATE)],
            "A",
            3,
            "new",
        ),
        (
            "all equal: by code",
            [GuardPosition("g2", "A", 3, SEEN_LATE), GuardPosition("g1", "A", 3, SEEN_LATE)],
            "A",
            3,
            "g1",
        ),
        (
            "never signed in comes after a known sign-in",
            [GuardPosition("none", "A", 3, None), GuardPosition("seen", "A", 3, SEEN_EARLY)],
            "A",
            3,
            "seen",
        ),
        (
            "unknown floor after a known one",
            [GuardPosition("lost", "A", None, SEEN_LATE), GuardPosition("known", "A", 20, SEEN_EARLY)],
            "A",
            3,
            "known",
        ),
        (
            "other buildings: ground floor is nearer than the same floor number",
            [GuardPosition("b10", "B", 10, SEEN_LATE), GuardPosition("c1", "C", 1, SEEN_EARLY)],
            "A",
            10,
            "c1",
        ),
        (
            "no floor given: most recent sign-in in the building",
            [GuardPosition("old", "A", 1, SEEN_EARLY), GuardPosition("new", "A", 30, SEEN_LATE)],
            "A",
            None,
            "new",
        ),
    ],
)
def test_nearest_guard(
    case: str, guards: list[GuardPosition], building: str, floor: int | None, expected: str | None
) -> None:
    assert nearest_guard(guards, building, floor) == expected, case
