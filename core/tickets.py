"""The emergency ticket's workflow (issue 7): checking steps, n/a with a reason, acknowledging, closing.

Pure functions over plain frozen values, so the API and the gateway share one set of rules and the
rules are tested without a database. Each action returns the new value and a `TicketChange` for the
ticket's event log (who, when, what), or raises `TicketRuleError` with a code and a message in both
languages. The storage layer maps rows to these values and back.

Decisions (the procedures leave them open):
- A ticket goes `open` → `acknowledged` → `closed`, and is closed **only after acknowledgement**:
  acknowledging is the moment a person takes responsibility, and it is what stops the escalation, so
  a ticket nobody acknowledged must not disappear by being closed.
- Steps may be checked on an `open` ticket as well (the guard at the scene acts first, P5 §2.4), but
  never on a `closed` one: `ensure_open` is the guard the caller runs before `check_step` /
  `mark_not_applicable`.
- A safety-critical step ("P5 §2.4.2 never force the car doors open") is checked only with an
  explicit confirmation, and may be marked not applicable only with a reason (never silently); the
  change says it was safety-critical so the log shows it.
- A step marked n/a may later be checked (it turned out to apply); a done step stays done.
- A cleared alarm never closes its ticket (issue 7 item 5): `note_alarm_cleared` only logs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from core.outbound import Name

MAX_NOTE_CHARS = 1000
MAX_ACTOR_CHARS = 64


class TicketState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class StepState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    NOT_APPLICABLE = "not_applicable"


class ChangeKind(StrEnum):
    """`ticket_events.kind`: what happened to a ticket."""

    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    STEP_DONE = "step_done"
    STEP_NOT_APPLICABLE = "step_not_applicable"
    ALARM_CLEARED = "alarm_cleared"
    CLOSED = "closed"


class TicketRuleError(ValueError):
    """An action the workflow refuses. `kind` tells the API the answer: `conflict` (the ticket's
    state forbids it now: 409) or `invalid` (the request lacks something the person can add: 422)."""

    def __init__(
        self,
        code: str,
        message: Name,
        kind: Literal["conflict", "invalid"],
        problems: tuple[CloseProblem, ...] = (),
    ) -> None:
        self.code = code
        self.message = message
        self.kind = kind
        self.problems = problems
        super().__init__(f"{code}: {message.en}")


@dataclass(frozen=True, slots=True)
class StepSpec:
    """What a procedure says about one step (adapted from core.procedures by the caller)."""

    code: str
    safety_critical: bool
    department: str
    text: Name | None = None  # quoted in messages when given


@dataclass(frozen=True, slots=True)
class TicketStep:
    """One step of one ticket and what was done about it."""

    spec: StepSpec
    state: StepState = StepState.PENDING
    by: str | None = None
    at: datetime | None = None
    safety_confirmed: bool = False
    note: str | None = None

    @property
    def code(self) -> str:
        return self.spec.code


@dataclass(frozen=True, slots=True)
class Ticket:
    """The workflow part of a ticket (its id, alarm and procedure are the caller's)."""

    state: TicketState = TicketState.OPEN
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """P0 §5: every incident is recorded, its cause analysed and prevention proposed."""

    what_happened: str = ""
    cause: str = ""
    prevention: str = ""


@dataclass(frozen=True, slots=True)
class TicketChange:
    """One line of the ticket's event log."""

    kind: ChangeKind
    actor: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CloseProblem:
    """Why a ticket cannot be closed yet; `step` names the step when it is about one."""

    code: str
    message: Name
    step: str | None = None


def _check(by: str, at: datetime) -> str:
    """Refuse what is a caller's bug rather than a person's mistake: no actor, a naive time."""
    actor = by.strip()
    if not actor or len(actor) > MAX_ACTOR_CHARS:
        raise ValueError(f"actor must be 1..{MAX_ACTOR_CHARS} characters: {by!r}")
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return actor


def _text(value: str | None, what: str) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > MAX_NOTE_CHARS:
        raise TicketRuleError(
            f"{what}_too_long",
            Name(zh=f"内容过长：最多 {MAX_NOTE_CHARS} 字", en=f"Too long: at most {MAX_NOTE_CHARS} characters"),
            "invalid",
        )
    return value.strip()


def _step_label(spec: StepSpec) -> Name:
    if spec.text is None:
        return Name(zh=f"步骤 {spec.code}", en=f"Step {spec.code}")
    return Name(zh=f"步骤「{spec.text.zh}」", en=f"Step “{spec.text.en}”")


_STATE_TEXT = {
    StepState.DONE: Name(zh="完成", en="done"),
    StepState.NOT_APPLICABLE: Name(zh="标为不适用", en="marked not applicable"),
}
_CLOSED = Name(zh="工单已关闭，不能再修改", en="The ticket is closed and can no longer be changed")


def ensure_open(ticket: Ticket) -> None:
    """Steps may change while the ticket is open or acknowledged, never after it is closed."""
    if ticket.state is TicketState.CLOSED:
        raise TicketRuleError("ticket_closed", _CLOSED, "conflict")


def open_ticket(
    specs: list[StepSpec], by: str, at: datetime, detail: dict[str, Any] | None = None
) -> tuple[Ticket, list[TicketStep], TicketChange]:
    """A new ticket with every step of its procedure pending, in the procedure's order."""
    actor = _check(by, at)
    codes = [s.code for s in specs]
    if len(set(codes)) != len(codes):
        raise ValueError(f"step codes repeat: {codes}")
    steps = [TicketStep(spec=s) for s in specs]
    return Ticket(), steps, TicketChange(ChangeKind.OPENED, actor, at, {"steps": codes, **(detail or {})})


def check_step(
    step: TicketStep, by: str, at: datetime, confirm_safety: bool = False, note: str | None = None
) -> tuple[TicketStep, TicketChange]:
    """Mark a step done. A safety-critical one needs `confirm_safety=True`: the person states that
    the rule was kept (P5 §2.4.2: the car doors were not forced open), rather than ticking a box."""
    actor = _check(by, at)
    label = _step_label(step.spec)
    if step.state is StepState.DONE:
        raise TicketRuleError(
            "step_already_done",
            Name(zh=f"{label.zh}已由 {step.by} 完成", en=f"{label.en} was already done by {step.by}"),
            "conflict",
        )
    if step.spec.safety_critical and not confirm_safety:
        raise TicketRuleError(
            "safety_confirmation_required",
            Name(
                zh=f"{label.zh}是安全关键步骤：请明确确认已遵守（例如未强行撬开电梯轿厢门）后再勾选",
                en=f"{label.en} is safety-critical: confirm explicitly that it was kept "
                "(e.g. the car doors were not forced open) to check it",
            ),
            "invalid",
        )
    kept = _text(note, "note")
    done = replace(step, state=StepState.DONE, by=actor, at=at, safety_confirmed=step.spec.safety_critical, note=kept)
    detail: dict[str, Any] = {"step": step.code, "safety_critical": step.spec.safety_critical}
    if step.spec.safety_critical:
        detail["safety_confirmed"] = True
    if step.state is StepState.NOT_APPLICABLE:
        detail["was_not_applicable"] = True
    if kept:
        detail["note"] = kept
    return done, TicketChange(ChangeKind.STEP_DONE, actor, at, detail)


def mark_not_applicable(step: TicketStep, by: str, at: datetime, reason: str) -> tuple[TicketStep, TicketChange]:
    """Mark a step as not applying to this incident (nobody trapped, no one shocked). A reason is
    always required, for a safety-critical step too: the log must say why it was skipped."""
    actor = _check(by, at)
    label = _step_label(step.spec)
    if step.state is not StepState.PENDING:
        state = _STATE_TEXT[step.state]
        raise TicketRuleError(
            "step_not_pending",
            Name(zh=f"{label.zh}已{state.zh}", en=f"{label.en} is already {state.en}"),
            "conflict",
        )
    why = _text(reason, "reason")
    if why is None:
        raise TicketRuleError(
            "reason_required",
            Name(zh=f"请写明{label.zh}不适用的原因", en=f"Say why {label.en.lower()[0]}{label.en[1:]} does not apply"),
            "invalid",
        )
    skipped = replace(step, state=StepState.NOT_APPLICABLE, by=actor, at=at, safety_confirmed=False, note=why)
    detail = {"step": step.code, "safety_critical": step.spec.safety_critical, "reason": why}
    return skipped, TicketChange(ChangeKind.STEP_NOT_APPLICABLE, actor, at, detail)


def acknowledge(ticket: Ticket, by: str, at: datetime) -> tuple[Ticket, TicketChange]:
    """A person takes responsibility; the caller then cancels the escalation (core.escalation)."""
    actor = _check(by, at)
    ensure_open(ticket)
    if ticket.state is TicketState.ACKNOWLEDGED:
        raise TicketRuleError(
            "already_acknowledged",
            Name(zh=f"工单已由 {ticket.acknowledged_by} 确认", en=f"Already acknowledged by {ticket.acknowledged_by}"),
            "conflict",
        )
    acked = replace(ticket, state=TicketState.ACKNOWLEDGED, acknowledged_by=actor, acknowledged_at=at)
    return acked, TicketChange(ChangeKind.ACKNOWLEDGED, actor, at, {})


_RECORD_FIELDS = {
    "what_happened": Name(zh="事件经过", en="what happened"),
    "cause": Name(zh="原因分析", en="the cause"),
    "prevention": Name(zh="预防措施", en="how to prevent it"),
}


def can_close(ticket: Ticket, steps: list[TicketStep], record: IncidentRecord | None) -> list[CloseProblem]:
    """Everything that still stands between the ticket and closing it; empty when it may close."""
    problems: list[CloseProblem] = []
    if ticket.state is TicketState.CLOSED:
        return [CloseProblem("ticket_closed", _CLOSED)]
    if ticket.state is TicketState.OPEN:
        problems.append(
            CloseProblem("not_acknowledged", Name(zh="工单尚未确认接单", en="Nobody has acknowledged the ticket yet"))
        )
    for step in steps:
        label = _step_label(step.spec)
        if step.state is StepState.PENDING:
            problems.append(
                CloseProblem(
                    "step_pending",
                    Name(zh=f"{label.zh}尚未完成或标为不适用", en=f"{label.en} is neither done nor marked n/a"),
                    step.code,
                )
            )
        elif step.state is StepState.DONE and step.spec.safety_critical and not step.safety_confirmed:
            problems.append(
                CloseProblem(
                    "safety_not_confirmed",
                    Name(zh=f"{label.zh}为安全关键步骤，未经确认", en=f"{label.en} is safety-critical: unconfirmed"),
                    step.code,
                )
            )
    for name, what in _RECORD_FIELDS.items():
        if record is None or not getattr(record, name).strip():
            problems.append(
                CloseProblem(
                    f"record_{name}_missing",
                    Name(zh=f"事件记录缺少{what.zh}（P0 §5）", en=f"The incident record lacks {what.en} (P0 §5)"),
                )
            )
    return problems


def close(
    ticket: Ticket, steps: list[TicketStep], record: IncidentRecord | None, by: str, at: datetime
) -> tuple[Ticket, TicketChange]:
    """Close the ticket when `can_close` finds nothing; otherwise refuse with every problem listed."""
    actor = _check(by, at)
    problems = can_close(ticket, steps, record)
    if problems:
        if problems[0].code == "ticket_closed":
            raise TicketRuleError("ticket_closed", _CLOSED, "conflict")
        raise TicketRuleError(
            "cannot_close",
            Name(
                zh="工单还不能关闭：" + "；".join(p.message.zh for p in problems),
                en="The ticket cannot be closed yet: " + "; ".join(p.message.en for p in problems),
            ),
            "invalid" if all(p.code.startswith("record_") for p in problems) else "conflict",
            tuple(problems),
        )
    assert record is not None  # can_close found the record complete
    closed = replace(ticket, state=TicketState.CLOSED, closed_by=actor, closed_at=at)
    detail = {"what_happened": record.what_happened, "cause": record.cause, "prevention": record.prevention}
    return closed, TicketChange(ChangeKind.CLOSED, actor, at, detail)


def note_alarm_cleared(ticket: Ticket, alarm: str, at: datetime, by: str = "system") -> TicketChange:
    """The alarm went back to normal. Logged for the people on the ticket; the ticket stays as it is:
    a dry sensor does not mean the valve was closed or the cause recorded (issue 7 item 5)."""
    actor = _check(by, at)
    return TicketChange(ChangeKind.ALARM_CLEARED, actor, at, {"alarm": alarm, "ticket_state": ticket.state.value})
