"""Procedures as data: what a ticket of each incident type must carry, who acts, how soon, whom to wake next.

The company's written procedures (P5 emergencies, P1 patrol, P0 §5 record) are kept as one YAML file per
incident type (storage/procedures/files/), so a company changes its steps without changing code. This module
is the shape of one file and the rules a file must keep; it reads no file itself (storage/procedures/load.py).

Every rule broken by a file is reported at once, each with the path of the field to change, through
`ProcedureIssues`, so the loader can name the line of the file it is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.findings import FINDING_PROCEDURES
from core.severity import Severity

Kind = Literal["emergency", "maintenance"]
Level = Literal["on_duty", "shift_leader", "supervisor", "manager"]
#: Who is woken, in this order (issue 7): on-duty staff of the procedure's departments, 班长, 主管, 经理.
ESCALATION_LEVELS: tuple[Level, ...] = ("on_duty", "shift_leader", "supervisor", "manager")
#: Reminders at one level are bounded, so a silent level never turns into a stream of messages.
MAX_REMINDERS = 5
#: A week: no wait or deadline in a procedure is longer (a typo such as 14400 for 1440 is caught).
MAX_MINUTES = 7 * 24 * 60
#: P0 §5: every incident is recorded (what happened, the cause, the prevention); every procedure ends with it.
RECORD_STEP = "record"

REQUIRED_PROCEDURES: tuple[str, ...] = (
    "water_ingress",  # P5 §2.4.1
    "elevator_fault",  # P5 §2.4.2
    "medical_emergency",  # P5 §2.4.3
    "disturbance",  # P5 §2.4.4
    "electrical_leakage",  # P5 §2.4.5(1)
    "gas_leak",  # P5 §2.4.5(2)
    "fire_smoke",  # P5 §2.4.5 "fire → fire procedure", P6 §4.7
    "rule_refusal",  # P5 §2.4.6
    "emergency_muster",  # P5 §1
    "door_open",  # P1 §2.9
    "device_offline",  # P1 §2.6, P8 §4.2
    "low_battery",  # P1 §2.6, P0 standards
    *FINDING_PROCEDURES,  # P1 §2.6–2.17, P0 standards: opened by a guard's finding (core/findings.py)
)
#: Alarm type (stored on the alarm) → the procedure its ticket follows.
PROCEDURE_FOR_ALARM: Mapping[str, str] = {
    "water_leak": "water_ingress",
    "gas": "gas_leak",
    "electric_leak": "electrical_leakage",
    "smoke": "fire_smoke",
    "elevator": "elevator_fault",
    "door_open": "door_open",
    "offline": "device_offline",
    "low_battery": "low_battery",
}
#: Opened by hand (no sensor reports them); the muster is also sent on a critical gas alarm (P5 §1).
MANUAL_PROCEDURES: tuple[str, ...] = ("medical_emergency", "disturbance", "rule_refusal", "emergency_muster")

Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
#: A department code as the site file spells it (storage/sitefile/schema.py `Code`).
DeptCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Minutes = Annotated[int, Field(gt=0, le=MAX_MINUTES)]
IssuePath = tuple[str | int, ...]


class ProcedureIssues(ValueError):
    """Rules of a procedure that its data breaks; each issue is (path of the field to change, what to change).

    A ValueError, so pydantic reports it as a validation error; the loader finds it in the error's
    `ctx["error"]` and turns each path into a line of the file.
    """

    def __init__(self, issues: list[tuple[IssuePath, str]]):
        self.issues = issues
        super().__init__("; ".join(f"{'.'.join(map(str, p))}: {m}" if p else m for p, m in issues))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    """A text a person reads, in both languages the staff use (zh-CN for the staff, en)."""

    zh: Annotated[str, Field(min_length=1, max_length=500)]
    en: Annotated[str, Field(min_length=1, max_length=500)]


class Deadlines(_Strict):
    """Minutes from the ticket's opening; the defaults are the company's own time limits.

    ack_min and notify_engineering_min: P8 §4.1(2) (recorded within 2 min, engineering notified within 3);
    on_site_min: P8 §4.1(2)① (on site within 10 min of the order); public_facility_on_site_min: P8 §4.2
    (15 min for a public facility); resolve_min: P0 standards (handled within 24 h), unset for emergencies.
    """

    ack_min: Minutes = 2
    notify_engineering_min: Minutes = 3
    on_site_min: Minutes = 10
    public_facility_on_site_min: Minutes = 15
    resolve_min: Minutes | None = None


class EscalationLevel(_Strict):
    """One level of the chain: notify it, remind it `reminders` times every `reminder_every_min`, and after
    `wait_min` without an acknowledgement go on to the next level (after the last one, stop)."""

    level: Level
    wait_min: Minutes
    reminders: Annotated[int, Field(ge=0, le=MAX_REMINDERS)] = 0
    reminder_every_min: Minutes | None = None

    @model_validator(mode="after")
    def _reminders_fit(self) -> Self:
        if self.reminders and self.reminder_every_min is None:
            raise ProcedureIssues([(("reminder_every_min",), "set how many minutes apart the reminders are sent")])
        if self.reminders and self.reminder_every_min and self.reminders * self.reminder_every_min >= self.wait_min:
            raise ProcedureIssues(
                [
                    (
                        ("reminders",),
                        f"{self.reminders} reminder(s) every {self.reminder_every_min} min do not fit in "
                        f"wait_min {self.wait_min}: send fewer or more often, or wait longer",
                    )
                ]
            )
        return self


#: The default chain, used when a file gives none: the on-duty staff have ack_min (2) to acknowledge, then
#: 班长, 主管 and 经理 (P5 §2.3: the manager commands) each get a little longer.
DEFAULT_ESCALATION: tuple[EscalationLevel, ...] = (
    EscalationLevel(level="on_duty", wait_min=2, reminders=1, reminder_every_min=1),
    EscalationLevel(level="shift_leader", wait_min=5, reminders=2, reminder_every_min=2),
    EscalationLevel(level="supervisor", wait_min=10, reminders=1, reminder_every_min=5),
    EscalationLevel(level="manager", wait_min=15, reminders=2, reminder_every_min=5),
)


class Step(_Strict):
    """One line of the ticket's checklist. A safety-critical step (never force the car doors open) must be
    confirmed explicitly by whoever checks it (core/tickets.py)."""

    code: Code
    text: Text
    safety_critical: bool = False
    department: DeptCode
    deadline_min: Minutes | None = None
    note: Text | None = None


class Procedure(_Strict):
    """One incident type: its checklist in order, who acts, its deadlines and its escalation chain."""

    code: Code
    version: Literal[1] = 1
    name: Text
    source: Annotated[str, Field(min_length=1, max_length=100)]
    kind: Kind
    severity: Severity = "major"
    departments: tuple[DeptCode, ...]
    deadlines: Deadlines = Deadlines()
    public_facility: bool = False
    escalation: tuple[EscalationLevel, ...] = DEFAULT_ESCALATION
    steps: tuple[Step, ...]
    note: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        issues = procedure_issues(self)
        if issues:
            raise ProcedureIssues(issues)
        return self

    @property
    def on_site_min(self) -> int:
        """Minutes until someone must be on site: a public facility has its own limit (P8 §4.2)."""
        d = self.deadlines
        return d.public_facility_on_site_min if self.public_facility else d.on_site_min

    @property
    def safety_critical_steps(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.steps if s.safety_critical)

    def step(self, code: str) -> Step:
        for s in self.steps:
            if s.code == code:
                return s
        raise KeyError(f"procedure {self.code} has no step {code!r}")


def procedure_issues(proc: Procedure) -> list[tuple[IssuePath, str]]:
    """Every rule across fields the procedure breaks, each with the path to change and what to change."""
    issues: list[tuple[IssuePath, str]] = []
    if not proc.departments:
        issues.append((("departments",), "name at least one department that acts, e.g. [security]"))
    for i, dept in enumerate(proc.departments):
        if dept in proc.departments[:i]:
            issues.append((("departments", i), f"department {dept!r} is listed twice: remove one"))
    if not proc.steps:
        issues.append((("steps",), f"add at least one step; the last is the P0 §5 record step `{RECORD_STEP}`"))
    first_at: dict[str, int] = {}
    for i, step in enumerate(proc.steps):
        if step.code in first_at:
            issues.append(
                (
                    ("steps", i, "code"),
                    f"step code {step.code!r} is already used by step {first_at[step.code]}: "
                    "give each step its own code",
                )
            )
        first_at.setdefault(step.code, i)
        if step.department not in proc.departments:
            issues.append(
                (
                    ("steps", i, "department"),
                    f"department {step.department!r} is not in `departments` "
                    f"{list(proc.departments)}: add it there or give the step one of those",
                )
            )
    if proc.steps and proc.steps[-1].code != RECORD_STEP:
        issues.append(
            (
                ("steps", len(proc.steps) - 1, "code"),
                f"the last step must be the P0 §5 record step `{RECORD_STEP}` "
                "(what happened, the cause, the prevention)",
            )
        )
    if not proc.escalation:
        issues.append(
            (("escalation",), "give at least one level, e.g. on_duty, or leave `escalation` out for the default")
        )
    previous = -1
    for i, lvl in enumerate(proc.escalation):
        rank = ESCALATION_LEVELS.index(lvl.level)
        if rank <= previous:
            issues.append(
                (
                    ("escalation", i, "level"),
                    f"level {lvl.level!r} comes after {ESCALATION_LEVELS[previous]!r}: list "
                    f"levels once each, in the order {', '.join(ESCALATION_LEVELS)}",
                )
            )
        previous = max(previous, rank)
    return issues


def procedure_for_alarm(alarm_type: str) -> str:
    """The procedure an alarm's ticket follows; an alarm type without one is a programming error."""
    try:
        return PROCEDURE_FOR_ALARM[alarm_type]
    except KeyError:
        raise KeyError(f"alarm type {alarm_type!r} has no procedure; known: {sorted(PROCEDURE_FOR_ALARM)}") from None
