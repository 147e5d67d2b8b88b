"""The ticket workflow rules (core/tickets.py): steps, safety confirmation, n/a, acknowledge, close."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.outbound import Name
from core.tickets import (
    ChangeKind,
    IncidentRecord,
    StepSpec,
    StepState,
    Ticket,
    TicketRuleError,
    TicketState,
    TicketStep,
    acknowledge,
    can_close,
    check_step,
    close,
    ensure_open,
    mark_not_applicable,
    note_alarm_cleared,
    open_ticket,
)

NOW = datetime(2026, 11, 28, 21, 5, tzinfo=UTC)
#: The elevator procedure's steps as P5 §2.4.2 orders them; the last is P0 §5's record.
ELEVATOR = [
    StepSpec("check_trapped", False, "security"),
    StepSpec("comfort_over_intercom", False, "security"),
    StepSpec("notify_engineering", False, "security"),
    StepSpec("keep_order", False, "security"),
    StepSpec("doors_not_forced", True, "security", Name(zh="切忌强行撬开电梯轿厢门", en="Never force the car doors")),
    StepSpec("record", False, "security"),
]
RECORD = IncidentRecord("Car stuck at 7F, one person inside", "Door sensor fault", "Monthly door sensor check")


def _steps() -> list[TicketStep]:
    return open_ticket(ELEVATOR, "control1", NOW)[1]


def _all_done(steps: list[TicketStep]) -> list[TicketStep]:
    return [check_step(s, "g01", NOW, confirm_safety=s.spec.safety_critical)[0] for s in steps]


def test_open_ticket_starts_open_with_every_step_pending_in_order() -> None:
    ticket, steps, change = open_ticket(ELEVATOR, "system", NOW, {"alarm": "a1"})
    assert ticket.state is TicketState.OPEN
    assert [s.code for s in steps] == [s.code for s in ELEVATOR]
    assert {s.state for s in steps} == {StepState.PENDING}
    assert (change.kind, change.actor, change.at) == (ChangeKind.OPENED, "system", NOW)
    assert change.detail == {"steps": [s.code for s in ELEVATOR], "alarm": "a1"}


def test_open_ticket_refuses_repeated_step_codes() -> None:
    with pytest.raises(ValueError, match="repeat"):
        open_ticket([ELEVATOR[0], ELEVATOR[0]], "system", NOW)


def test_check_step_records_who_when_and_note() -> None:
    step, change = check_step(_steps()[0], "g01", NOW, note="  nobody inside ")
    assert (step.state, step.by, step.at, step.note) == (StepState.DONE, "g01", NOW, "nobody inside")
    assert (change.kind, change.actor, change.at) == (ChangeKind.STEP_DONE, "g01", NOW)
    assert change.detail == {"step": "check_trapped", "safety_critical": False, "note": "nobody inside"}


@pytest.mark.parametrize(
    ("confirm", "allowed"),
    [(False, False), (True, True)],
)
def test_p5_2_4_2_never_force_the_car_doors_needs_explicit_confirmation(confirm: bool, allowed: bool) -> None:
    """P5 §2.4.2: the safety-critical step is ticked only with an explicit statement that it was kept."""
    doors = _steps()[4]
    if not allowed:
        with pytest.raises(TicketRuleError) as err:
            check_step(doors, "g01", NOW, confirm_safety=confirm)
        assert (err.value.code, err.value.kind) == ("safety_confirmation_required", "invalid")
        assert "car doors were not forced" in err.value.message.en
        assert "Never force the car doors" in err.value.message.en
        assert "撬开电梯轿厢门" in err.value.message.zh
        return
    step, change = check_step(doors, "g01", NOW, confirm_safety=confirm)
    assert step.state is StepState.DONE and step.safety_confirmed
    assert change.detail["safety_confirmed"] is True and change.detail["safety_critical"] is True


def test_confirming_safety_on_an_ordinary_step_does_not_mark_it_safety_confirmed() -> None:
    step, change = check_step(_steps()[0], "g01", NOW, confirm_safety=True)
    assert not step.safety_confirmed
    assert "safety_confirmed" not in change.detail


def test_a_step_already_done_is_refused_and_names_who_did_it() -> None:
    done, _ = check_step(_steps()[0], "g01", NOW)
    with pytest.raises(TicketRuleError) as err:
        check_step(done, "g02", NOW + timedelta(minutes=1))
    assert (err.value.code, err.value.kind) == ("step_already_done", "conflict")
    assert "g01" in err.value.message.en and "g01" in err.value.message.zh


def test_a_step_marked_not_applicable_can_still_be_checked_later() -> None:
    skipped, _ = mark_not_applicable(_steps()[1], "g01", NOW, "nobody trapped")
    done, change = check_step(skipped, "g02", NOW + timedelta(minutes=2))
    assert done.state is StepState.DONE and done.by == "g02"
    assert change.detail["was_not_applicable"] is True


@pytest.mark.parametrize(
    ("index", "reason", "code"),
    [
        (1, "", "reason_required"),
        (1, "   ", "reason_required"),
        (4, "", "reason_required"),  # a safety-critical step is never skipped silently
        (1, "x" * 1001, "reason_too_long"),
    ],
)
def test_not_applicable_needs_a_reason(index: int, reason: str, code: str) -> None:
    with pytest.raises(TicketRuleError) as err:
        mark_not_applicable(_steps()[index], "g01", NOW, reason)
    assert (err.value.code, err.value.kind) == (code, "invalid")
    assert err.value.message.zh and err.value.message.en


def test_safety_critical_step_may_be_not_applicable_with_a_reason_and_the_log_says_so() -> None:
    step, change = mark_not_applicable(_steps()[4], "g01", NOW, " car empty ")
    assert (step.state, step.note, step.safety_confirmed) == (StepState.NOT_APPLICABLE, "car empty", False)
    assert change.kind is ChangeKind.STEP_NOT_APPLICABLE
    assert change.detail == {"step": "doors_not_forced", "safety_critical": True, "reason": "car empty"}


@pytest.mark.parametrize("first", ["done", "n/a"])
def test_not_applicable_only_from_pending(first: str) -> None:
    step = _steps()[0]
    step = check_step(step, "g01", NOW)[0] if first == "done" else mark_not_applicable(step, "g01", NOW, "no")[0]
    with pytest.raises(TicketRuleError) as err:
        mark_not_applicable(step, "g02", NOW, "because")
    assert (err.value.code, err.value.kind) == ("step_not_pending", "conflict")


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (TicketState.OPEN, None),
        (TicketState.ACKNOWLEDGED, "already_acknowledged"),
        (TicketState.CLOSED, "ticket_closed"),
    ],
)
def test_acknowledge_only_an_open_ticket(state: TicketState, error: str | None) -> None:
    ticket = Ticket(state=state, acknowledged_by="s01" if state is not TicketState.OPEN else None)
    if error is None:
        acked, change = acknowledge(ticket, "s01", NOW)
        assert (acked.state, acked.acknowledged_by, acked.acknowledged_at) == (TicketState.ACKNOWLEDGED, "s01", NOW)
        assert change.kind is ChangeKind.ACKNOWLEDGED and change.actor == "s01"
        return
    with pytest.raises(TicketRuleError) as err:
        acknowledge(ticket, "s02", NOW)
    assert (err.value.code, err.value.kind) == (error, "conflict")


def test_a_closed_ticket_refuses_step_changes_through_ensure_open() -> None:
    ensure_open(Ticket(state=TicketState.ACKNOWLEDGED))
    ensure_open(Ticket())
    with pytest.raises(TicketRuleError) as err:
        ensure_open(Ticket(state=TicketState.CLOSED))
    assert err.value.code == "ticket_closed"


ACKED = Ticket(state=TicketState.ACKNOWLEDGED, acknowledged_by="s01", acknowledged_at=NOW)


@pytest.mark.parametrize(
    ("case", "ticket", "record", "codes"),
    [
        ("complete", ACKED, RECORD, []),
        ("not acknowledged", Ticket(), RECORD, ["not_acknowledged"]),
        (
            "no record (P0 §5)",
            ACKED,
            None,
            ["record_what_happened_missing", "record_cause_missing", "record_prevention_missing"],
        ),
        ("blank cause (P0 §5)", ACKED, replace(RECORD, cause="  "), ["record_cause_missing"]),
        ("no prevention (P0 §5)", ACKED, replace(RECORD, prevention=""), ["record_prevention_missing"]),
        ("already closed", Ticket(state=TicketState.CLOSED), RECORD, ["ticket_closed"]),
    ],
)
def test_p0_5_can_close_needs_acknowledgement_and_a_complete_record(
    case: str, ticket: Ticket, record: IncidentRecord | None, codes: list[str]
) -> None:
    """P0 §5: what happened, the cause and prevention are recorded before an incident is closed."""
    problems = can_close(ticket, _all_done(_steps()), record)
    assert [p.code for p in problems] == codes, case
    assert all(p.message.zh and p.message.en for p in problems)


def test_can_close_lists_each_pending_step_and_accepts_not_applicable() -> None:
    steps = _steps()
    steps[0] = check_step(steps[0], "g01", NOW)[0]
    steps[1] = mark_not_applicable(steps[1], "g01", NOW, "nobody trapped")[0]
    problems = can_close(ACKED, steps, RECORD)
    assert [(p.code, p.step) for p in problems] == [("step_pending", s.code) for s in ELEVATOR[2:]]


def test_can_close_flags_a_safety_step_done_without_confirmation() -> None:
    """P5 §2.4.2: a row stored without the confirmation (old data, a bug) does not pass as confirmed."""
    steps = _all_done(_steps())
    steps[4] = replace(steps[4], safety_confirmed=False)
    assert [(p.code, p.step) for p in can_close(ACKED, steps, RECORD)] == [("safety_not_confirmed", "doors_not_forced")]


def test_close_records_who_and_the_incident_record() -> None:
    closed, change = close(ACKED, _all_done(_steps()), RECORD, "s01", NOW)
    assert (closed.state, closed.closed_by, closed.closed_at) == (TicketState.CLOSED, "s01", NOW)
    assert closed.acknowledged_by == "s01"
    assert change.kind is ChangeKind.CLOSED
    assert change.detail == {
        "what_happened": RECORD.what_happened,
        "cause": RECORD.cause,
        "prevention": RECORD.prevention,
    }


@pytest.mark.parametrize(
    ("ticket", "steps_done", "record", "code", "kind"),
    [
        (ACKED, True, None, "cannot_close", "invalid"),  # only the record is missing: the request lacks it
        (ACKED, False, RECORD, "cannot_close", "conflict"),  # steps pending: the ticket is not there yet
        (Ticket(), True, RECORD, "cannot_close", "conflict"),
        (Ticket(state=TicketState.CLOSED), True, RECORD, "ticket_closed", "conflict"),
    ],
)
def test_close_refuses_with_every_problem(
    ticket: Ticket, steps_done: bool, record: IncidentRecord | None, code: str, kind: str
) -> None:
    steps = _all_done(_steps()) if steps_done else _steps()
    with pytest.raises(TicketRuleError) as err:
        close(ticket, steps, record, "s01", NOW)
    assert (err.value.code, err.value.kind) == (code, kind)
    if code == "cannot_close":
        assert [p.code for p in err.value.problems] == [p.code for p in can_close(ticket, steps, record)]
        assert all(p.message.en in err.value.message.en for p in err.value.problems)


def test_a_cleared_alarm_is_logged_but_does_not_close_the_ticket() -> None:
    """Issue 7 item 5: the sensor going back to normal is not the procedure done."""
    ticket = Ticket()
    change = note_alarm_cleared(ticket, "alarm-17", NOW)
    assert change.kind is ChangeKind.ALARM_CLEARED and change.actor == "system"
    assert change.detail == {"alarm": "alarm-17", "ticket_state": "open"}
    assert ticket.state is TicketState.OPEN
    assert can_close(ticket, _steps(), None), "still refused to close"


@pytest.mark.parametrize(
    ("by", "at"),
    [("", NOW), ("   ", NOW), ("x" * 65, NOW), ("g01", NOW.replace(tzinfo=None))],
)
def test_caller_bugs_are_plain_value_errors(by: str, at: datetime) -> None:
    with pytest.raises(ValueError) as err:
        check_step(_steps()[0], by, at)
    assert not isinstance(err.value, TicketRuleError)


def test_stored_names_are_the_documented_strings() -> None:
    assert [s.value for s in TicketState] == ["open", "acknowledged", "closed"]
    assert [s.value for s in StepState] == ["pending", "done", "not_applicable"]
    assert all(len(k.value) <= 32 for k in ChangeKind)
