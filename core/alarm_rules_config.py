"""Alarm rule configuration: thresholds and debounce per sensor kind, with site and device overrides.

The `alarm_rules:` section of a site file is an `AlarmRulesSpec`. Built-in defaults (below, each
with the procedure it serves) apply unless the site changes them for a kind (`defaults`) or for one
device (`devices`); an override names only what it changes. `resolve_rule` merges the three layers
into the one `KindRule` the evaluation (core/alarm_rules_eval.py) uses.
"""

from __future__ import annotations

import itertools
import re
import zoneinfo
from collections.abc import Mapping
from datetime import time
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from core.contract import SENSOR_VALUES
from core.directory import READER_KINDS, SENSOR_KINDS, DeviceKind
from core.severity import Severity, severity_rank

Op = Literal[">=", ">", "<=", "<", "==", "!="]
AlarmType = Literal["water_leak", "gas", "electric_leak", "smoke", "elevator", "door_open", "offline", "low_battery"]
ALARM_TYPES: tuple[AlarmType, ...] = get_args(AlarmType)

_ALARM_TYPE_OF_KIND: dict[str, AlarmType] = {
    "water_leak": "water_leak",
    "gas": "gas",
    "electric_leak": "electric_leak",
    "smoke": "smoke",
    "elevator": "elevator",
    "door": "door_open",
}
#: Fields that only mean something for a door contact; set on another kind they are a mistake.
DOOR_ONLY = frozenset({"open_max_min", "allowed_hours"})
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_DAY_S = 86_400


def alarm_type_for(sensor_kind: str) -> AlarmType:
    """The alarm type a sensor kind's own readings and events raise (issue 7 vocabulary)."""
    try:
        return _ALARM_TYPE_OF_KIND[sensor_kind]
    except KeyError:
        kinds = ", ".join(_ALARM_TYPE_OF_KIND)
        raise ValueError(f"no alarm type for sensor kind {sensor_kind!r}; kinds: {kinds}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Strict):
    """`field op value` raises `severity`, when every `when` field also equals its value.

    `op` may be left out: `>=` for a number, `==` for true/false or text. `when` joins a second
    field, e.g. an elevator fault *with* a passenger inside is critical (P5 §2.4.2).
    """

    op: Op
    value: StrictBool | float | str
    severity: Severity
    when: dict[str, StrictBool | float | str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_op(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "op" not in data and "value" in data:
            numeric = isinstance(data["value"], int | float) and not isinstance(data["value"], bool)
            return {**data, "op": ">=" if numeric else "=="}
        return data

    @model_validator(mode="after")
    def _op_fits_value(self) -> Threshold:
        if self.op not in ("==", "!=") and not isinstance(self.value, float):
            raise ValueError(f"op {self.op!r} compares numbers, but value is {self.value!r}: use op '==' or a number")
        return self


Thresholds = dict[str, tuple[Threshold, ...]]
Seconds = Annotated[float, Field(ge=0, le=_DAY_S)]


class KindRule(_Strict):
    """How one kind of sensor (or one device) turns readings into alarms. Every field has a
    default, so an override names only what it changes (`resolve_rule` merges by the fields set).

    A `thresholds`/`event_thresholds` override replaces the levels of the fields it names and keeps
    the others; give a field an empty list to drop its levels.
    """

    thresholds: Thresholds = Field(default_factory=dict)
    #: Severity of a device's own `state: alarm` event, raised by `event_thresholds` on its `detail`.
    event_severity: Severity = "major"
    event_thresholds: Thresholds = Field(default_factory=dict)
    for_s: Seconds = 0  # the condition must hold this long before the first raise
    count: Annotated[int, Field(ge=1, le=100)] = 1  # ... and for this many readings in a row
    clear_delay_s: Seconds = 0  # a lower level must hold this long before the alarm falls or clears
    clear_count: Annotated[int, Field(ge=1, le=100)] = 1
    flap_transitions: Annotated[int, Field(ge=2, le=1000)] = 6  # this many changes ...
    flap_window_s: Annotated[float, Field(gt=0, le=_DAY_S)] = 600  # ... within this window is flapping
    open_max_min: Annotated[float, Field(gt=0, le=24 * 60)] | None = None  # door only (P1 §2.9)
    allowed_hours: str | None = None  # door only: "07:00-22:00" site-local; open outside it alarms at once
    expected_interval_s: Annotated[float, Field(gt=0, le=7 * _DAY_S)] = 300
    missed_intervals: Annotated[int, Field(ge=1, le=100)] = 3
    offline_severity: Severity = "major"
    battery_low_pct: Annotated[int, Field(ge=1, le=99)] = 20
    battery_ok_pct: Annotated[int, Field(ge=2, le=100)] = 25  # clears above this, so 19/20/19 does not flap
    battery_severity: Severity = "warning"
    timezone: str | None = None  # IANA name for allowed_hours; resolve_rule fills in the site's

    @field_validator("allowed_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            m = _HOURS.match(value.strip())
            if m is None:
                raise ValueError(f"allowed_hours {value!r} must look like '07:00-22:00' (24-hour, local time)")
            if m.group(1, 2) == m.group(3, 4):
                raise ValueError(f"allowed_hours {value!r} starts and ends at the same time: leave it out instead")
            return value.strip()
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"timezone {value!r} is not an IANA zone name, e.g. 'Asia/Shanghai'") from None
        return value

    @field_validator("thresholds", "event_thresholds")
    @classmethod
    def _levels_in_order(cls, value: Thresholds) -> Thresholds:
        for name, levels in value.items():
            _check_order(name, levels)
        return value

    def hours(self) -> tuple[time, time] | None:
        """`allowed_hours` as (start, end) local times; end before start wraps past midnight."""
        if self.allowed_hours is None:
            return None
        h1, m1, h2, m2 = (int(x) for x in _HOURS.match(self.allowed_hours).groups())  # type: ignore[union-attr]
        return time(h1, m1), time(h2, m2)


def _check_order(name: str, levels: tuple[Threshold, ...]) -> None:
    """A worse severity must need a worse value: critical at 8 %LEL under warning at 10 is a typo."""
    for up, sign in ((">=", 1), (">", 1), ("<=", -1), ("<", -1)):
        plain = sorted(
            (severity_rank(t.severity), float(t.value), t.severity) for t in levels if t.op == up and not t.when
        )
        for (_, v1, s1), (_, v2, s2) in itertools.pairwise(plain):
            if s1 != s2 and (v2 - v1) * sign < 0:
                way = "higher" if sign > 0 else "lower"
                raise ValueError(f"{name}: {s2} at {v2:g} must need a {way} value than {s1} at {v1:g}: fix the values")


class AlarmRulesSpec(_Strict):
    """The site file's `alarm_rules:` section: per-kind `defaults` and per-device overrides."""

    defaults: dict[DeviceKind, KindRule] = Field(default_factory=dict)
    devices: dict[Annotated[str, Field(min_length=1, max_length=64)], KindRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> AlarmRulesSpec:
        problems: list[str] = []
        for kind, rule in self.defaults.items():
            problems += [f"alarm_rules.defaults.{kind}: {p}" for p in _kind_problems(rule, kind)]
            problems += [f"alarm_rules.defaults.{kind}: {p}" for p in _merged_problems(_merge(built_in(kind), rule))]
        for code, rule in self.devices.items():
            seen: set[str] = set()
            for k in BUILT_IN:  # the device's kind is not known here: the check must hold for every kind
                seen.update(_merged_problems(_merge(_merge(built_in(k), self.defaults.get(k)), rule)))  # type: ignore[call-overload]
            problems += [f"alarm_rules.devices.{code}: {p}" for p in sorted(seen)]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _kind_problems(rule: KindRule, kind: str) -> list[str]:
    """What is wrong with override `rule` for devices of `kind`: door-only fields, unknown fields."""
    problems = (
        []
        if kind == "door"
        else [f"{f} applies only to door sensors: remove it" for f in sorted(DOOR_ONLY & rule.model_fields_set)]
    )
    schema = SENSOR_VALUES.get(kind)
    fields = sorted(schema.model_fields) if schema is not None else []
    for name in rule.thresholds:
        if name not in fields:
            problems.append(f"{kind} readings have no field {name!r}; fields: {', '.join(fields) or 'none'}")
    return problems


def _merged_problems(rule: KindRule) -> list[str]:
    """Checks that need the whole rule, so they run after the merge, not on a partial override."""
    if rule.battery_ok_pct <= rule.battery_low_pct:
        return [f"battery_ok_pct {rule.battery_ok_pct} must be above battery_low_pct {rule.battery_low_pct}: raise it"]
    return []


def check_devices(spec: AlarmRulesSpec, kinds: Mapping[str, str]) -> list[str]:
    """Problems of the per-device overrides against the site's devices (`code -> kind`): unknown
    codes, fields the device's kind does not have. For the site file loader, which knows both."""
    problems: list[str] = []
    for code, rule in spec.devices.items():
        kind = kinds.get(code)
        if kind is None:
            problems.append(f"alarm_rules.devices.{code}: no device {code!r} in this site: fix the code or remove it")
        else:
            problems += [f"alarm_rules.devices.{code}: {p}" for p in _kind_problems(rule, kind)]
    return problems


def _merge(base: KindRule, over: KindRule | None) -> KindRule:
    if over is None:
        return base
    data = base.model_dump()
    given = over.model_dump(include=over.model_fields_set)
    for name, value in given.items():
        data[name] = {**data[name], **value} if name in ("thresholds", "event_thresholds") else value
    return KindRule.model_validate(data)


def _t(op: Op, value: bool | float | str, severity: Severity, **when: bool | float | str) -> Threshold:
    return Threshold(op=op, value=value, severity=severity, when=when)


#: Built-in rules, used where the site file says nothing. Clear delays: gas and leakage current are
#: analogue values that wander around a threshold, so a lower level must hold (60 s, 30 s) before
#: the alarm falls; the others are contacts or controller states the device already debounces, and
#: a dry floor, a closed door or a reset elevator should show at once (flapping still catches a
#: chattering contact).
BUILT_IN: dict[str, KindRule] = {
    # P5 §2.4.1: water on the floor is handled at once.
    "water_leak": KindRule(thresholds={"wet": (_t("==", True, "major"),)}),
    # P5 §2.4.5(2): 10 %LEL is a leak to locate; 25 %LEL is serious: evacuate (critical).
    "gas": KindRule(
        thresholds={"lel_pct": (_t(">=", 10, "warning"), _t(">=", 25, "critical"))},
        event_thresholds={"lel_pct": (_t(">=", 25, "critical"),)},
        clear_delay_s=60,
    ),
    # P5 §2.4.5(1): 30 mA is the residual current at which an RCD must trip (danger to people).
    "electric_leak": KindRule(thresholds={"leak_ma": (_t(">=", 30, "major"),)}, clear_delay_s=30),
    # Fire procedure (P5 §2.4.5, P6 §4.7): a smoke alarm is always critical.
    "smoke": KindRule(thresholds={"alarm": (_t("==", True, "critical"),)}, event_severity="critical"),
    # P5 §2.4.2: a fault is major; a fault with someone trapped inside is critical.
    "elevator": KindRule(
        thresholds={"state": (_t("==", "fault", "major"),), "occupied": (_t("==", True, "critical", state="fault"),)},
        event_thresholds={"trapped": (_t("==", True, "critical"),)},
    ),
    # P1 §2.9: machine/pipe/fan/telecom room doors are kept closed; open longer than 10 min is a warning.
    "door": KindRule(thresholds={"open": (_t("==", True, "warning"),)}, event_severity="warning", open_max_min=10),
}


def built_in(kind: str) -> KindRule:
    """The built-in rule of a device kind; readers get only the offline and battery rules."""
    if kind in BUILT_IN:
        return BUILT_IN[kind]
    if kind in READER_KINDS:
        return KindRule()
    raise ValueError(f"unknown device kind {kind!r}; kinds: {', '.join(sorted(SENSOR_KINDS | READER_KINDS))}")


def resolve_rule(
    spec: AlarmRulesSpec | None, sensor_kind: str, device_code: str, *, timezone: str | None = None
) -> KindRule:
    """The rule for one device: built-in, then the site's default for its kind, then its own
    override. `timezone` (the site's) is used for `allowed_hours` unless the rule names one."""
    rule = built_in(sensor_kind)
    if spec is not None:
        rule = _merge(_merge(rule, spec.defaults.get(sensor_kind)), spec.devices.get(device_code))  # type: ignore[call-overload]
    if rule.timezone is None and timezone is not None:
        rule = rule.model_copy(update={"timezone": timezone})
    return rule
