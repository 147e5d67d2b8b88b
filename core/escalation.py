"""Who is on duty, whom a ticket reaches next, and who goes first (issue 7; P5 §1, §2.3).

Pure: the roster, the chain and the clock come in, decisions come out. The gateway keeps an
escalation's position in a deadline ("ticket.escalate") and calls `next_step` when it is due.

Escalation: level 0 is the on-duty staff of the procedure's departments, then the shift leader,
the supervisor and the manager (P5 §2.3: the manager commands, supervisors and shift leaders carry
out). At each level the people are notified, reminded every `reminder_every_min` at most
`reminders` times while the level's `wait_min` lasts, then the next level is notified. A level
with nobody on duty is skipped at once (never stuck on an empty level); after the last level the
escalation ends. Acknowledgement stops it: the caller cancels the deadline when a ticket is
acknowledged, and `escalation_active` is checked again when a deadline fires (an acknowledgement
may commit after the deadline was claimed).

Roster times are the site's wall-clock times. A shift whose end is before its start crosses
midnight and belongs to the day it starts (Monday 22:00–06:00 covers Tuesday 03:00); a shift whose
start equals its end lasts 24 hours (a 24-hour post, or a manager who is always reachable).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel

from core.tickets import TicketState

#: Reminders at one level are bounded, whatever a procedure file says.
MAX_REMINDERS = 5
#: Positions that muster with the guards (P5 §1: every 护管员 on duty), and who answers per level.
GUARD_POSITIONS = frozenset({"guard", "shift_leader", "duty_head"})
LEVEL_POSITIONS: dict[str, frozenset[str] | None] = {
    "on_duty": None,  # anyone on duty in the procedure's departments
    "shift_leader": frozenset({"shift_leader", "duty_head"}),
    "supervisor": frozenset({"supervisor"}),
    "manager": frozenset({"manager"}),
}


# --- roster -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DutyShift:
    staff_code: str
    department: str
    position: str
    weekdays: frozenset[int]  # ISO: 1 = Monday … 7 = Sunday, the day the shift starts
    start: time
    end: time

    def covers(self, local: datetime) -> bool:
        """Whether this shift is on at a site-local wall-clock time."""
        day, now = local.isoweekday(), local.time().replace(tzinfo=None)
        previous = 7 if day == 1 else day - 1
        if self.start < self.end:
            return day in self.weekdays and self.start <= now < self.end
        # crosses midnight (or lasts 24 h when start == end): the evening part, then the morning after
        return (day in self.weekdays and now >= self.start) or (previous in self.weekdays and now < self.end)


def _local(at: datetime, tz: tzinfo | str) -> datetime:
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return at.astimezone(ZoneInfo(tz) if isinstance(tz, str) else tz)


def on_duty(roster: Iterable[DutyShift], at: datetime, tz: tzinfo | str) -> list[DutyShift]:
    """The shifts on at `at` (an aware time), read in the site's time zone, in roster order."""
    local = _local(at, tz)
    return [s for s in roster if s.covers(local)]


def duty_check(shifts: Sequence[DutyShift], tz: tzinfo | str) -> Callable[[str, datetime], bool]:
    """Whether a guard (by code) is on duty at an instant; a site without a roster has everyone on
    duty (it is onboarded before its shifts are written: nobody is refused for a missing roster)."""
    if not shifts:
        return lambda _guard, _at: True
    return lambda guard, at: any(s.staff_code == guard for s in on_duty(shifts, at, tz))


def _codes(shifts: Iterable[DutyShift]) -> list[str]:
    return list(dict.fromkeys(s.staff_code for s in shifts))


def level_recipients(
    roster: Sequence[DutyShift], at: datetime, tz: tzinfo | str, departments: Iterable[str]
) -> Callable[[str], list[str]]:
    """`recipients_for_level` for `next_step`: who answers each level now. Levels below the manager
    stay within the procedure's departments; the manager level is anyone on duty as manager."""
    shifts, depts = on_duty(roster, at, tz), frozenset(departments)

    def recipients(level: str) -> list[str]:
        positions = LEVEL_POSITIONS.get(level, frozenset())
        if level == "manager":
            return _codes(s for s in shifts if positions is not None and s.position in positions)
        return _codes(s for s in shifts if s.department in depts and (positions is None or s.position in positions))

    return recipients


def muster_recipients(roster: Iterable[DutyShift], at: datetime, tz: tzinfo | str) -> list[str]:
    """P5 §1 emergency muster: every guard on duty is called, whatever the department says."""
    return _codes(s for s in on_duty(roster, at, tz) if s.position in GUARD_POSITIONS)


# --- the site file's `roster:` section ------------------------------------------------------------

_DAY_NAMES = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_FULL_DAY_NAMES = frozenset({"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"})
_TIME = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)(?::00)?$")  # ":00" seconds: the stored JSON form


def _day(token: str | int) -> int:
    text = str(token).strip().lower()
    if text.isdigit() and 1 <= int(text) <= 7 and not isinstance(token, bool):
        return int(text)
    if text in _DAY_NAMES or text in _FULL_DAY_NAMES:
        return _DAY_NAMES[text[:3]]
    raise ValueError(f"`{token}` is not a day: write 1..7 (1 = Monday) or mon, tue, wed, thu, fri, sat, sun")


def _days(value: Any) -> frozenset[int]:
    """`days:` as a list (`[1, 2, 3]`, `[mon, tue]`), a range (`mon-fri`, `1-5`) or `daily`."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("daily", "all", "every day"):
            return frozenset(range(1, 8))
        if "-" in text:
            first, _, last = text.partition("-")
            a, b = _day(first), _day(last)
            return frozenset(range(a, b + 1)) if a <= b else frozenset([*range(a, 8), *range(1, b + 1)])
        return frozenset(_day(t) for t in text.replace(",", " ").split())
    if isinstance(value, int):
        return frozenset({_day(value)})
    if isinstance(value, list | tuple | set | frozenset) and value:
        return frozenset(_day(t) for t in value)
    raise ValueError("`days` is empty: write e.g. `days: mon-fri`, `days: [6, 7]` or `days: daily`")


def _clock(value: Any) -> time:
    """`HH:MM` in quotes. Unquoted, YAML reads 22:00 as the number 1320, so a number is refused."""
    if isinstance(value, time):
        return value
    if isinstance(value, int | float):
        raise ValueError(f'write the time in quotes, e.g. "22:00" (unquoted, YAML read it as the number {value})')
    match = _TIME.match(str(value).strip())
    if match is None or (match.group(1) == "24" and match.group(2) != "00"):
        raise ValueError(f'`{value}` is not a time of day: write "HH:MM", e.g. "06:00" or "22:00" ("24:00" ends a day)')
    hour, minute = int(match.group(1)), int(match.group(2))
    return time(0, 0) if hour == 24 else time(hour, minute)


Days = Annotated[frozenset[int], BeforeValidator(_days)]
Clock = Annotated[time, BeforeValidator(_clock)]


class RosterEntrySpec(BaseModel):
    """One line of `roster:`: `{staff: g01, days: mon-fri, from: "22:00", to: "06:00"}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    staff: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    days: Days
    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")


class RosterSpec(RootModel[list[RosterEntrySpec]]):
    """The `roster:` section. Department and position come from the staff list (`staff:`)."""

    root: list[RosterEntrySpec] = []

    def shifts(self, staff: Mapping[str, tuple[str, str]]) -> list[DutyShift]:
        """Duty shifts, given staff code → (department, position); an unknown staff code is refused."""
        unknown = [
            f"roster[{i}]: staff `{e.staff}` is not in `staff:`"
            for i, e in enumerate(self.root)
            if e.staff not in staff
        ]
        if unknown:
            raise ValueError("; ".join(unknown) + ": add them to `staff:` or correct the code")
        return [DutyShift(e.staff, *staff[e.staff], weekdays=e.days, start=e.start, end=e.end) for e in self.root]


# --- escalation -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LevelSpec:
    level: str
    wait_min: int
    reminders: int = 0
    reminder_every_min: int = 5

    def __post_init__(self) -> None:
        if self.wait_min < 1 or self.reminder_every_min < 1:
            raise ValueError(f"{self.level}: wait_min and reminder_every_min must be at least 1 minute")
        if not 0 <= self.reminders <= MAX_REMINDERS:
            raise ValueError(f"{self.level}: reminders must be 0..{MAX_REMINDERS}, not {self.reminders}")

    def reminder_times(self, started: datetime) -> list[datetime]:
        """When reminders go out: only those before the wait ends (then the next level comes)."""
        fit = math.ceil(self.wait_min / self.reminder_every_min) - 1
        step = timedelta(minutes=self.reminder_every_min)
        return [started + step * k for k in range(1, min(self.reminders, fit) + 1)]


@dataclass(frozen=True, slots=True)
class EscalationPosition:
    """Where an escalation stands: the level last notified, since when, and reminders sent there."""

    level_index: int
    started_at: datetime
    reminders_sent: int = 0


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """What to do now. `level` is None when nobody is left to notify (`exhausted`); `due_at` is when
    to call `next_step` again, None when the escalation is over."""

    level: str | None
    recipients: list[str]
    reminder: bool
    due_at: datetime | None
    position: EscalationPosition | None
    skipped: list[str] = field(default_factory=list)

    @property
    def exhausted(self) -> bool:
        return self.level is None


def escalation_active(state: TicketState) -> bool:
    """Only an unacknowledged ticket escalates."""
    return state is TicketState.OPEN


def _due(chain: Sequence[LevelSpec], position: EscalationPosition) -> datetime | None:
    level = chain[position.level_index]
    pending = level.reminder_times(position.started_at)[position.reminders_sent :]
    if pending:
        return pending[0]
    if position.level_index + 1 < len(chain):
        return position.started_at + timedelta(minutes=level.wait_min)
    return None  # the last level: nothing after its reminders


def _notify_from(
    chain: Sequence[LevelSpec], first: int, recipients_for_level: Callable[[str], list[str]], now: datetime
) -> EscalationStep:
    skipped: list[str] = []
    for index in range(first, len(chain)):
        people = list(dict.fromkeys(recipients_for_level(chain[index].level)))
        if not people:
            skipped.append(chain[index].level)
            continue
        position = EscalationPosition(index, now)
        return EscalationStep(chain[index].level, people, False, _due(chain, position), position, skipped)
    return EscalationStep(None, [], False, None, None, skipped)


def next_step(
    chain: Sequence[LevelSpec],
    position: EscalationPosition | None,
    recipients_for_level: Callable[[str], list[str]],
    now: datetime,
) -> EscalationStep:
    """The step due at `now`, from the last one taken (`position`, None at the start).

    A reminder is sent while reminders remain and the level's wait has not run out; otherwise the
    next level with someone on duty is notified. A late call (the gateway was down) does not send
    the reminders it missed: once the wait is over, it moves on. Recipients are asked afresh each
    time, so a reminder reaches whoever is on duty now; if nobody is, the level is left at once.
    """
    if now.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    if position is None:
        return _notify_from(chain, 0, recipients_for_level, now)
    index, level = position.level_index, chain[position.level_index]
    last = index + 1 >= len(chain)
    if now < position.started_at + timedelta(minutes=level.wait_min):
        pending = level.reminder_times(position.started_at)[position.reminders_sent :]
        if pending and now < pending[0]:  # called before the reminder is due: nothing to send yet
            return EscalationStep(level.level, [], False, pending[0], position)
        if pending:
            people = list(dict.fromkeys(recipients_for_level(level.level)))
            if people:
                moved = EscalationPosition(index, position.started_at, position.reminders_sent + 1)
                return EscalationStep(level.level, people, True, _due(chain, moved), moved)
            step = _notify_from(chain, index + 1, recipients_for_level, now)  # nobody left on this level
            return replace(step, skipped=[level.level, *step.skipped])
        if not last:  # called before anything is due: nothing to send, come back when it is
            return EscalationStep(level.level, [], False, _due(chain, position), position)
    if last:
        return EscalationStep(None, [], False, None, None)
    return _notify_from(chain, index + 1, recipients_for_level, now)


# --- first responder ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuardPosition:
    """Where a guard on duty was last seen: the checkpoint of their latest sign-in."""

    code: str
    building: str | None
    floor: int | None
    last_signin_at: datetime | None


def floor_distance(a: int, b: int) -> int:
    """Floors between two floors; there is no floor 0 (1 is the ground floor, -1 the first basement)."""
    return abs(a - b) - (1 if (a > 0) != (b > 0) else 0)


def nearest_guard(guards: Iterable[GuardPosition], building: str | None, floor: int | None) -> str | None:
    """The guard to send first: same building, then fewest floors to climb (from another building:
    down to the ground floor and up again), then the most recent sign-in (the freshest position is
    the surest), then the code, so the answer is deterministic. No guard → None."""

    def key(g: GuardPosition) -> tuple[int, float, float, str]:
        same = building is not None and g.building == building
        if floor is None:
            far = 0.0
        elif g.floor is None:
            far = math.inf
        elif same:
            far = float(floor_distance(g.floor, floor))
        else:
            far = float(floor_distance(g.floor, 1) + floor_distance(1, floor))
        seen = -g.last_signin_at.astimezone(UTC).timestamp() if g.last_signin_at else math.inf
        return (0 if same else 1), far, seen, g.code

    ranked = sorted(guards, key=key)
    return ranked[0].code if ranked else None
