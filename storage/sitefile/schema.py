"""The site file (docs/site-file.md): a whole site in YAML, validated before anything is written."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from core.alarm_rules_config import AlarmRulesSpec
from core.directory import DeviceKind
from core.escalation import RosterSpec
from core.patrol_plans import PlanSpec, RouteSpec

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Uid = Annotated[str, Field(pattern=r"^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{20})$"), AfterValidator(str.upper)]
LocationType = Literal[
    "lobby",
    "floor",
    "shop",
    "machine_room",
    "pipe_well",
    "fan_room",
    "telecom_room",
    "pump_room",
    "switch_room",
    "elevator_room",
    "elevator",
    "parking",
    "green_area",
    "road",
    "gate",
    "roof",
    "fire_control_room",
    "office",
]
Position = Literal[
    "guard",
    "shift_leader",
    "duty_head",
    "front_desk",
    "property_assistant",
    "supervisor",
    "technician",
    "cleaner",
    "gardener",
    "accountant",
    "manager",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Name(_Strict):
    zh: Annotated[str, Field(min_length=1, max_length=200)]
    en: Annotated[str, Field(min_length=1, max_length=200)]


class SiteSpec(_Strict):
    code: Code
    name: Name
    timezone: str = "Asia/Shanghai"


class DepartmentSpec(_Strict):
    code: Code
    name: Name


class BuildingSpec(_Strict):
    code: Code
    name: Name
    floors_above: Annotated[int, Field(ge=1, le=200)]
    floors_below: Annotated[int, Field(ge=0, le=20)] = 0


class LocationSpec(_Strict):
    code: Code
    name: Name
    type: LocationType
    building: Code | None = None
    floor: int | None = None
    tag: Uid | None = None

    @model_validator(mode="after")
    def _floor_needs_building(self) -> LocationSpec:
        if self.floor is not None and self.building is None:
            raise ValueError("a floor is given without a building: add `building:` or remove `floor:`")
        if self.floor == 0:
            raise ValueError("floor 0 does not exist: the ground floor is 1, the first basement is -1")
        return self


class StaffSpec(_Strict):
    code: Code
    name: Name
    department: Code
    position: Position
    badge: Uid | None = None
    phone: Annotated[str, Field(max_length=32)] | None = None


class DeviceSpec(_Strict):
    code: Code
    kind: DeviceKind
    name: Name
    holder: Code | None = None
    location: Code | None = None

    @model_validator(mode="after")
    def _placement(self) -> DeviceSpec:
        if self.holder is not None and self.kind != "handheld_reader":
            raise ValueError("only a handheld_reader has a holder: mount this device with `location:`")
        if self.kind != "handheld_reader" and self.location is None:
            raise ValueError(f"a {self.kind} must say where it is mounted: add `location:`")
        return self


class SiteFile(_Strict):
    version: Literal[1]
    site: SiteSpec
    departments: list[DepartmentSpec] = []
    buildings: list[BuildingSpec] = []
    locations: list[LocationSpec] = []
    staff: list[StaffSpec] = []
    devices: list[DeviceSpec] = []
    #: thresholds, durations and hysteresis per sensor kind and per device (core.alarm_rules_config)
    alarm_rules: AlarmRulesSpec = AlarmRulesSpec()
    #: who is on duty when (core.escalation): escalation and the emergency muster read it
    roster: RosterSpec = RosterSpec()
    #: patrol routes and plans (core.patrol_plans): rounds are generated from them; a site without
    #: plans answers every known checkpoint tag `ok` (onboarding before its plans are written)
    routes: list[RouteSpec] = []
    plans: list[PlanSpec] = []
