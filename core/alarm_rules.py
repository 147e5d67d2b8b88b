"""Alarm rules (issue 7 item 2): sensor readings, device events and status → alarm decisions.

The one import for callers; the parts live beside it, each small enough to read whole:
- `alarm_rules_config`: the site file's `alarm_rules:` section, built-in defaults, `resolve_rule`;
- `alarm_rules_state`: the stored per-(device, alarm type) `RuleState` and the `Decision`;
- `alarm_rules_eval`: `evaluate`, `evaluate_due`, `evaluate_event`, `evaluate_status`, `offline_due`;
- `alarm_rules_text`: bilingual names of severities and alarm types, and of a reading's values.

Pure: no I/O, no clock of its own; every function takes the time it decides at.
"""

from __future__ import annotations

from core.alarm_rules_config import (
    ALARM_TYPES,
    BUILT_IN,
    AlarmRulesSpec,
    AlarmType,
    KindRule,
    Threshold,
    alarm_type_for,
    built_in,
    check_devices,
    resolve_rule,
)
from core.alarm_rules_eval import (
    StatusAlarm,
    evaluate,
    evaluate_due,
    evaluate_event,
    evaluate_status,
    level_of,
    offline_due,
    silence_limit,
)
from core.alarm_rules_state import ACTIONS, Action, Clearing, Decision, Pending, RuleState
from core.alarm_rules_text import ALARM_TYPE_NAMES, describe_values
from core.severity import SEVERITIES, SEVERITY_NAMES, Severity, severity_rank

__all__ = [
    "ACTIONS",
    "ALARM_TYPES",
    "ALARM_TYPE_NAMES",
    "BUILT_IN",
    "SEVERITIES",
    "SEVERITY_NAMES",
    "Action",
    "AlarmRulesSpec",
    "AlarmType",
    "Clearing",
    "Decision",
    "KindRule",
    "Pending",
    "RuleState",
    "Severity",
    "StatusAlarm",
    "Threshold",
    "alarm_type_for",
    "built_in",
    "check_devices",
    "describe_values",
    "evaluate",
    "evaluate_due",
    "evaluate_event",
    "evaluate_status",
    "level_of",
    "offline_due",
    "resolve_rule",
    "severity_rank",
    "silence_limit",
]
