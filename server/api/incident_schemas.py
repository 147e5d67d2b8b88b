"""What the incident endpoints take and return (alarms, snoozes, tickets, sensors, procedures):
one `…Create`/`…Update` per write and one `…Public` per thing shown, like server/api/schemas.py.

Also the refusal of a ticket or alarm rule (core.tickets.TicketRuleError) as the API answers it:
the same body for 409 and 422, carrying the rule's code, its message in both languages and, for a
refused close, every problem that stands in the way (P0 §5), so the UI can show them all at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import Path, Query
from pydantic import BaseModel, Field

from core.outbound import Name
from core.procedures import MANUAL_PROCEDURES, MAX_MINUTES
from core.tickets import MAX_NOTE_CHARS

#: A text a person types (a comment, a reason, a note): bounded, no NUL (PostgreSQL text cannot hold one).
Text = Annotated[str, Field(max_length=MAX_NOTE_CHARS, pattern=r"^[^\x00]*$")]
#: A code of the site file (site, device, location): what the database holds, no NUL.
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
#: core.procedures.MANUAL_PROCEDURES, spelt out for the type checker (the assert keeps them equal).
#: A filter by code (`?site=`, `?device=`, …); no NUL, which STRICT_PARAMS refuses anyway (documented here).
NO_NUL = r"^[^\x00]+$"
CodeFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NO_NUL)]
#: A code in the path (`/sensors/{site}/{device}`, a step's code).
PathCode = Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL)]
ManualProcedure = Literal["medical_emergency", "disturbance", "rule_refusal", "emergency_muster"]
assert get_args(ManualProcedure) == MANUAL_PROCEDURES
#: Default and bound of a snooze: a day by default, never longer than a week (a forgotten snooze
#: must not silence a sensor for good).
SNOOZE_DEFAULT_MIN = 24 * 60
SNOOZE_MAX_MIN = 7 * 24 * 60
assert SNOOZE_MAX_MIN <= MAX_MINUTES


def copied(row: object, model: type[BaseModel]) -> dict[str, Any]:
    """The fields of `model` that the database row has under the same name; the caller adds (or
    overrides) the others: names in both languages, codes of joined rows."""
    return {name: getattr(row, name) for name in model.model_fields if hasattr(row, name)}


# --- refusals -------------------------------------------------------------------------------------


class ProblemPublic(BaseModel):
    """One thing that stands between a ticket and closing it; `step` names the step it is about."""

    code: str
    message: Name
    step: str | None = None


class RuleErrorPublic(BaseModel):
    """A rule refused the action: 409 (the state forbids it now) or 422 (something is missing that
    the person can add). `detail` is the English message, as in every other error answer."""

    detail: str
    code: str
    message: Name
    problems: list[ProblemPublic] = []


#: The answers a ticket or alarm action documents besides those read from its dependencies
#: (server/api/openapi_errors.py): a 422 is FastAPI's validation list or a rule's refusal.
RULE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {
        "model": RuleErrorPublic,
        "description": "The ticket's or alarm's state forbids this now (the body says why)",
    },
    422: {
        "description": "A parameter or the body is not valid, or a rule needs more (a confirmation, a reason, "
        "the incident record): the body says what",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/HTTPValidationError"},
                        {"$ref": "#/components/schemas/RuleErrorPublic"},
                    ]
                }
            }
        },
    },
}


# --- alarms ---------------------------------------------------------------------------------------


class AlarmPublic(BaseModel):
    """One alarm's life, with where it is (for the control room's map and roll-ups)."""

    id: int
    site: str
    device: str
    device_name: Name
    alarm_type: str
    severity: str
    peak_severity: str
    source: str
    code: str | None
    active: bool
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    comment: str | None
    count: int
    last_value: dict[str, Any]
    flapping: bool
    opened_at: datetime
    last_seen: datetime
    cleared_at: datetime | None
    location: str | None
    location_name: Name | None
    building: str | None
    floor: int | None  # 1 = ground floor, -1 = first basement
    floor_label: str | None
    ticket_id: int | None
    snoozed_until: datetime | None  # the device is snoozed: its alarms open no ticket and notify nobody


class AlarmAcknowledge(BaseModel):
    comment: Text | None = None


class AlarmCounts(BaseModel):
    """Active alarms of one place: all, critical ones, those nobody acknowledged yet."""

    active: int
    critical: int
    unacknowledged: int
    label: Name  # "3栋：2 条告警，1 条严重" / "Building 3: 2 active, 1 critical"


class FloorSummary(AlarmCounts):
    floor: int | None
    floor_label: str | None


class BuildingSummary(AlarmCounts):
    building: str | None  # None: alarms of devices that are in no building (roads, gates)
    name: Name
    floors: list[FloorSummary]


class SiteSummary(AlarmCounts):
    site: str
    name: Name
    buildings: list[BuildingSummary]


class SnoozeCreate(BaseModel):
    site: Code
    device: Code
    minutes: Annotated[int, Field(ge=1, le=SNOOZE_MAX_MIN)] = SNOOZE_DEFAULT_MIN
    reason: Annotated[str, Field(min_length=1, max_length=MAX_NOTE_CHARS, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")]


class SnoozePublic(BaseModel):
    id: int
    site: str
    device: str
    device_name: Name
    until: datetime
    active: bool
    reason: str
    created_by: str
    created_at: datetime


# --- tickets --------------------------------------------------------------------------------------


class TicketCreate(BaseModel):
    """Open a ticket by hand for an incident no sensor reports (a guard may: issue 7 item 5)."""

    site: Code
    procedure: ManualProcedure
    location: Code | None = None
    note: Text | None = None


class StepCheck(BaseModel):
    """`confirm_safety`: the person states that a safety-critical step's rule was kept (P5 §2.4.2)."""

    confirm_safety: bool = False
    note: Text | None = None


class StepNotApplicable(BaseModel):
    reason: Text = ""


class TicketClose(BaseModel):
    """The P0 §5 incident record. Missing parts are not refused here but by the rule, which lists
    every problem (a pending step too) in one answer."""

    what_happened: Text = ""
    cause: Text = ""
    prevention: Text = ""


class TicketPublic(BaseModel):
    id: int
    site: str
    procedure: str
    kind: str
    title: Name
    severity: str
    state: str
    departments: list[str]
    device: str | None
    location: str | None
    location_name: Name | None
    building: str | None
    floor: int | None
    first_responder: str | None
    escalation_level: str | None
    deadlines: dict[str, datetime]  # ack_by, notify_engineering_by, on_site_by, …
    opened_at: datetime
    opened_by: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    alarm_cleared_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    steps_total: int
    steps_pending: int


class StepPublic(BaseModel):
    position: int
    code: str
    text: Name
    safety_critical: bool
    department: str | None
    due_at: datetime | None
    state: str  # pending, done, not_applicable
    by: str | None
    at: datetime | None
    safety_confirmed: bool
    note: str | None


class TicketEventPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    kind: str
    detail: dict[str, Any]


class IncidentRecordPublic(BaseModel):
    what_happened: str
    cause: str
    prevention: str


class TicketDetailPublic(TicketPublic):
    steps: list[StepPublic]
    events: list[TicketEventPublic]
    alarms: list[int]  # ids of the alarms that opened or joined it
    record: IncidentRecordPublic | None


# --- sensors --------------------------------------------------------------------------------------


class ReadingPublic(BaseModel):
    id: int
    msg_id: str
    at: datetime  # the device's time, or the receipt time when its clock was off
    received_at: datetime
    values: dict[str, Any]


class LatestReadingPublic(BaseModel):
    at: datetime
    msg_id: str
    values: dict[str, Any]


class SensorReadingsPublic(BaseModel):
    """A sensor's newest value and a newest-first page of its history (pass `next_before_id`)."""

    site: str
    device: str
    kind: str
    name: Name
    location: str | None
    latest: LatestReadingPublic | None
    items: list[ReadingPublic]
    next_before_id: int | None


# --- procedures -----------------------------------------------------------------------------------


class ProcedureStepPublic(BaseModel):
    code: str
    text: Name
    safety_critical: bool
    department: str
    deadline_min: int | None
    note: Name | None


class EscalationLevelPublic(BaseModel):
    level: str
    wait_min: int
    reminders: int
    reminder_every_min: int | None


class ProcedurePublic(BaseModel):
    code: str
    name: Name
    source: str  # the company procedure it carries out, e.g. "P5 §2.4.2"
    kind: str
    severity: str
    departments: list[str]
    deadlines: dict[str, int | None]  # minutes from opening
    public_facility: bool
    manual: bool  # opened by hand (POST /api/v1/tickets); the others by an alarm
    alarm_types: list[str]
    escalation: list[EscalationLevelPublic]
    steps: list[ProcedureStepPublic]
    note: Name | None
