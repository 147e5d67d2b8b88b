"""The pure alarm rules (core/alarm_rules*.py): thresholds, debounce, hysteresis, flapping, overrides."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from core.alarm_rules import (
    AlarmRulesSpec,
    Decision,
    KindRule,
    RuleState,
    alarm_type_for,
    check_devices,
    describe_values,
    evaluate,
    evaluate_due,
    evaluate_event,
    evaluate_status,
    level_of,
    offline_due,
    resolve_rule,
)

T0 = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # 08:00 in Asia/Shanghai


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rule(kind: str, **override: Any) -> KindRule:
    spec = AlarmRulesSpec.model_validate({"devices": {"D1": override}}) if override else None
    return resolve_rule(spec, kind, "D1", timezone="Asia/Shanghai")


def feed(
    r: KindRule, readings: Sequence[tuple[float, Mapping[str, Any]]], state: RuleState | None = None
) -> list[Decision]:
    """Apply readings (seconds after T0, values) in turn; the decisions, each on the previous state."""
    out: list[Decision] = []
    st = state or RuleState()
    for seconds, values in readings:
        out.append(evaluate(r, st, at(seconds), values))
        st = out[-1].state
    return out


@pytest.mark.parametrize(
    ("kind", "values", "level"),
    [
        ("gas", {"lel_pct": 9.9}, None),  # P5 §2.4.5(2)
        ("gas", {"lel_pct": 10}, "warning"),  # P5 §2.4.5(2): a leak to locate
        ("gas", {"lel_pct": 24.9}, "warning"),
        ("gas", {"lel_pct": 25}, "critical"),  # P5 §2.4.5(2): serious, evacuate
        ("gas", {"lel_pct": "high"}, None),  # text where a number is compared never meets it
        ("gas", {"co_ppm": 50}, None),
        ("water_leak", {"wet": True}, "major"),  # P5 §2.4.1
        ("water_leak", {"wet": False, "level_mm": 3}, None),
        ("water_leak", {"wet": 1}, None),  # only true is wet, not a truthy number
        ("electric_leak", {"leak_ma": 29.9}, None),  # P5 §2.4.5(1)
        ("electric_leak", {"leak_ma": 30}, "major"),
        ("smoke", {"alarm": True}, "critical"),
        ("smoke", {"alarm": False, "obscuration_pct": 2}, None),
        ("elevator", {"state": "normal", "occupied": True}, None),  # P5 §2.4.2
        ("elevator", {"state": "fault", "occupied": False}, "major"),
        ("elevator", {"state": "fault"}, "major"),
        ("elevator", {"state": "fault", "occupied": True}, "critical"),  # P5 §2.4.2: someone trapped
        ("door", {"open": True}, "warning"),  # P1 §2.9
        ("door", {"open": False}, None),
    ],
)
def test_built_in_thresholds(kind: str, values: dict[str, Any], level: str | None) -> None:
    assert level_of(rule(kind).thresholds, values) == level


@pytest.mark.parametrize(
    ("kind", "alarm_type"),
    [("water_leak", "water_leak"), ("gas", "gas"), ("electric_leak", "electric_leak"), ("smoke", "smoke"),
     ("elevator", "elevator"), ("door", "door_open")],
)  # fmt: skip
def test_alarm_type_for_each_sensor_kind(kind: str, alarm_type: str) -> None:
    assert alarm_type_for(kind) == alarm_type


def test_alarm_type_for_an_unknown_kind_names_the_kinds() -> None:
    with pytest.raises(ValueError, match="water_leak"):
        alarm_type_for("fixed_reader")


def test_water_leak_raises_on_the_first_wet_reading_and_clears_when_dry() -> None:
    """P5 §2.4.1: water on the floor is acted on at once; no clear delay for a debounced contact."""
    d = feed(rule("water_leak"), [(0, {"wet": True}), (5, {"wet": True}), (9, {"wet": False})])
    assert [(x.action, x.severity) for x in d] == [("raise", "major"), (None, "major"), ("clear", None)]
    assert d[0].value is not None and d[0].value.zh == "浸水 是" and d[0].value.en == "wet yes"
    assert d[-1].due_at is None


def test_for_s_waits_then_evaluate_due_at_due_at_raises() -> None:
    """P5 §2.4.5(2) gas warning after the condition held for_s, with no further reading."""
    r = rule("gas", for_s=30)
    first = feed(r, [(0, {"lel_pct": 12})])[0]
    assert (first.action, first.severity, first.due_at) == (None, None, at(30))
    early = evaluate_due(r, first.state, at(29))
    assert early.action is None and early.due_at == at(30)
    due = evaluate_due(r, first.state, at(30))
    assert (due.action, due.severity, due.due_at) == ("raise", "warning", None)
    again = evaluate_due(r, due.state, at(40))
    assert again.action is None and again.severity == "warning"


def test_for_s_restarts_when_the_condition_lapses() -> None:
    d = feed(
        rule("gas", for_s=30),
        [(0, {"lel_pct": 12}), (20, {"lel_pct": 3}), (25, {"lel_pct": 12}), (50, {"lel_pct": 12})],
    )
    assert [x.action for x in d] == [None, None, None, None]
    assert d[1].due_at is None and d[1].state.pending is None
    assert d[-1].due_at == at(55), "the duration counts from 25 s, when the condition came back"


@pytest.mark.parametrize(
    ("levels", "raised_at"),
    [
        ([12, 12, 12], 2),
        ([12, 12, 5, 12, 12, 12], 5),  # a reading below the threshold breaks the run
        ([12, 5, 12, 5, 12, 5], None),
        ([30, 12, 12], 2),  # any alarm level counts towards the run
    ],
)
def test_count_needs_n_readings_in_a_row(levels: list[float], raised_at: int | None) -> None:
    d = feed(rule("gas", count=3), [(i, {"lel_pct": v}) for i, v in enumerate(levels)])
    raises = [i for i, x in enumerate(d) if x.action == "raise"]
    assert raises == ([] if raised_at is None else [raised_at])
    assert all(x.due_at is None for x in d[: raised_at or len(d)]), "a count is not waited for by time"


def test_severity_rises_at_once_once_active() -> None:
    """P5 §2.4.5(2): a gas alarm that reaches 25 %LEL is critical (evacuate) at that reading."""
    r = rule("gas", for_s=30, count=2)
    d = feed(r, [(0, {"lel_pct": 12}), (30, {"lel_pct": 12}), (31, {"lel_pct": 40})])
    assert [(x.action, x.severity) for x in d] == [(None, None), ("raise", "warning"), ("rise", "critical")]


def test_first_raise_at_critical_level_still_respects_for_s() -> None:
    d = feed(rule("gas", for_s=30), [(0, {"lel_pct": 40}), (10, {"lel_pct": 40})])
    assert [x.action for x in d] == [None, None]
    assert evaluate_due(rule("gas", for_s=30), d[-1].state, at(30)).severity == "critical"


def test_gas_falls_only_after_the_clear_delay_and_a_return_resets_it() -> None:
    """Hysteresis: 60 s below the level (built-in gas clear delay) before the alarm falls."""
    r = rule("gas")
    d = feed(r, [(0, {"lel_pct": 30}), (10, {"lel_pct": 15}), (40, {"lel_pct": 27}), (50, {"lel_pct": 15})])
    assert [(x.action, x.severity) for x in d] == [("raise", "critical"), (None, "critical"), (None, "critical"),
                                                   (None, "critical")]  # fmt: skip
    assert d[1].due_at == at(70) and d[2].due_at is None and d[3].due_at == at(110)
    assert evaluate_due(r, d[3].state, at(109)).action is None
    fell = evaluate_due(r, d[3].state, at(110))
    assert (fell.action, fell.severity, fell.due_at) == ("fall", "warning", None)
    done = feed(r, [(120, {"lel_pct": 2}), (179, {"lel_pct": 1}), (180, {"lel_pct": 1})], fell.state)
    assert [(x.action, x.severity) for x in done] == [(None, "warning"), (None, "warning"), ("clear", None)]


def test_fall_goes_to_the_worst_level_seen_then_on_to_the_latest() -> None:
    """Critical, then 15 (warning) and 5 (none) within the delay: it falls to warning first, and
    clears a full delay after the 5 %LEL reading even with no further reading."""
    r = rule("gas")
    d = feed(r, [(0, {"lel_pct": 30}), (10, {"lel_pct": 15}), (20, {"lel_pct": 5})])
    assert d[-1].due_at == at(70)
    fell = evaluate_due(r, d[-1].state, at(70))
    assert (fell.action, fell.severity, fell.due_at) == ("fall", "warning", at(80))
    cleared = evaluate_due(r, fell.state, at(80))
    assert (cleared.action, cleared.severity, cleared.due_at) == ("clear", None, None)


def test_clear_count_needs_that_many_low_readings() -> None:
    d = feed(rule("water_leak", clear_count=2), [(0, {"wet": True}), (1, {"wet": False}), (2, {"wet": False})])
    assert [x.action for x in d] == ["raise", None, "clear"]


def test_an_older_reading_is_ignored() -> None:
    """Readings of one sensor may reach two gateway workers and arrive out of order."""
    r = rule("gas")
    applied = feed(r, [(0, {"lel_pct": 30}), (20, {"lel_pct": 12})])[-1]
    late = evaluate(r, applied.state, at(10), {"lel_pct": 2})
    assert late.stale and late.action is None and late.state == applied.state
    assert late.due_at == applied.due_at == at(80)
    late_event = evaluate_event(r, applied.state, at(5), "gas", "clear", None, {})
    assert late_event.stale and late_event.state == applied.state
    same_time = evaluate(r, applied.state, at(20), {"lel_pct": 12})
    assert not same_time.stale


def test_flapping_is_announced_once_then_quiet_until_calm() -> None:
    r = rule("water_leak")  # 6 changes within 600 s
    d = feed(r, [(i * 10, {"wet": i % 2 == 0}) for i in range(10)])
    assert [x.action for x in d] == ["raise", "clear"] * 5, "every change is still decided"
    assert [x.flapping_started for x in d] == [False] * 5 + [True] + [False] * 4
    assert [x.quiet for x in d] == [False] * 5 + [True] * 5
    last = d[-1]
    assert last.state.flapping and len(last.state.transitions) <= 6
    assert last.due_at == at(670), "calm once only 2 of the last 6 changes (40..90 s) are within 600 s"
    assert evaluate_due(r, last.state, last.due_at - timedelta(seconds=1)).flapping_ended is False
    calm = evaluate_due(r, last.state, last.due_at)
    assert calm.flapping_ended and not calm.state.flapping and calm.action is None
    after = feed(r, [(2000, {"wet": True})], calm.state)[0]
    assert after.action == "raise" and not after.quiet


def test_a_rise_above_the_worst_level_while_flapping_is_not_quiet() -> None:
    """P5 §2.4.5(2): gas going critical must be heard even when its warning was flapping."""
    r = rule("gas", clear_delay_s=0)
    d = feed(r, [(i * 10, {"lel_pct": 12 if i % 2 == 0 else 2}) for i in range(7)] + [(70, {"lel_pct": 30})])
    assert d[5].flapping_started and d[6].quiet
    assert (d[-1].action, d[-1].severity, d[-1].quiet) == ("rise", "critical", False)
    again = feed(r, [(80, {"lel_pct": 2}), (90, {"lel_pct": 30})], d[-1].state)
    assert [(x.action, x.quiet) for x in again] == [("clear", True), ("raise", True)], "critical was heard already"


@pytest.mark.parametrize(
    ("local_open", "expected_raise"),
    [
        ("08:00", "08:10"),  # P1 §2.9: open longer than open_max_min (10) inside allowed hours
        ("21:55", "22:00"),  # still open when the allowed hours end
        ("23:00", "23:00"),  # open at all outside the allowed hours: at once
        ("06:59", "06:59"),
    ],
)
def test_door_open_too_long_or_outside_allowed_hours(local_open: str, expected_raise: str) -> None:
    """P1 §2.9: machine-room doors are kept closed; allowed_hours are site-local (Asia/Shanghai)."""
    r = rule("door", allowed_hours="07:00-22:00")
    local = datetime.fromisoformat(f"2026-11-28T{local_open}:00+08:00")
    want = datetime.fromisoformat(f"2026-11-28T{expected_raise}:00+08:00")
    first = evaluate(r, RuleState(), local, {"open": True})
    if want == local:
        assert (first.action, first.severity) == ("raise", "warning")
        return
    assert first.action is None and first.due_at == want
    raised = evaluate_due(r, first.state, want)
    assert (raised.action, raised.severity) == ("raise", "warning")
    closed = evaluate(r, raised.state, want + timedelta(minutes=1), {"open": False})
    assert closed.action == "clear"


def test_door_closed_before_the_limit_raises_nothing() -> None:
    d = feed(rule("door"), [(0, {"open": True}), (300, {"open": False})])
    assert [x.action for x in d] == [None, None] and d[0].due_at == at(600) and d[1].due_at is None
    assert evaluate_due(rule("door"), d[1].state, at(600)).action is None


@pytest.mark.parametrize(
    ("detail", "severity"),
    [({"trapped": True}, "critical"), ({"trapped": False}, "major"), ({}, "major")],
)
def test_elevator_event_with_trapped_passenger_is_critical(detail: dict[str, Any], severity: str) -> None:
    """P5 §2.4.2: someone trapped makes an elevator fault critical."""
    d = evaluate_event(rule("elevator"), RuleState(), at(0), "elevator", "alarm", "E12", detail)
    assert (d.action, d.severity, d.due_at) == ("raise", severity, None)
    assert d.value is not None and "E12" in d.value.en and "E12" in d.value.zh


def test_events_raise_rise_and_clear_at_once() -> None:
    r = rule("gas", for_s=60)  # for_s is for readings; the device has debounced its own event
    raised = evaluate_event(r, RuleState(), at(0), "gas", "alarm", None, {})
    assert (raised.action, raised.severity) == ("raise", "major")
    worse = evaluate_event(r, raised.state, at(1), "gas", "alarm", None, {"lel_pct": 30})
    assert (worse.action, worse.severity) == ("rise", "critical")
    milder = evaluate_event(r, worse.state, at(2), "gas", "alarm", None, {})
    assert (milder.action, milder.severity) == (None, "critical"), "only a clear event lowers an event alarm"
    cleared = evaluate_event(r, milder.state, at(3), "gas", "clear", None, {})
    assert (cleared.action, cleared.severity, cleared.due_at) == ("clear", None, None)


def test_status_offline_and_back_online() -> None:
    r = rule("smoke")
    down = evaluate_status(r, "offline", RuleState(), at(0), online=False)
    assert (down.action, down.severity) == ("raise", "major")
    up = evaluate_status(r, "offline", down.state, at(5), online=True)
    assert (up.action, up.severity) == ("clear", None)
    assert up.value is not None and up.value.en == "online yes"


@pytest.mark.parametrize(
    ("levels", "actions"),
    [
        ([50, 19], [None, "raise"]),
        ([19, 22, 24], ["raise", None, None]),  # between low (20) and ok (25): unchanged
        ([19, 25], ["raise", "clear"]),
        ([19, None, 30], ["raise", None, "clear"]),  # a status without battery says nothing about it
    ],
)
def test_low_battery_with_a_band_between_raise_and_clear(levels: list[int | None], actions: list[str | None]) -> None:
    r, st, got = rule("water_leak"), RuleState(), []
    for i, pct in enumerate(levels):
        d = evaluate_status(r, "low_battery", st, at(i), online=True, battery_pct=pct)
        got.append(d.action)
        st = d.state
    assert got == actions
    assert st.severity in (None, "warning")


def test_offline_after_missed_intervals_of_silence() -> None:
    r = rule("gas", expected_interval_s=60, missed_intervals=3)
    quiet = offline_due(r, RuleState(), at(0), at(179))
    assert quiet.action is None and quiet.due_at == at(180)
    down = offline_due(r, RuleState(), at(0), at(180))
    assert (down.action, down.severity) == ("raise", "major")
    assert offline_due(r, down.state, at(0), at(500)).action is None, "raised once"
    assert offline_due(rule("gas"), RuleState(), at(0), at(899)).due_at == at(900), "default 300 s × 3"


def test_overrides_merge_built_in_then_site_default_then_device() -> None:
    spec = AlarmRulesSpec.model_validate(
        {
            "defaults": {"gas": {"clear_delay_s": 120, "for_s": 5}, "elevator": {"thresholds": {"occupied": []}}},
            "devices": {"GAS-1": {"for_s": 10, "thresholds": {"lel_pct": [{"value": 8, "severity": "warning"}]}}},
        }
    )
    one, other = resolve_rule(spec, "gas", "GAS-1"), resolve_rule(spec, "gas", "GAS-2")
    assert (one.for_s, one.clear_delay_s, other.for_s, other.clear_delay_s) == (10, 120, 5, 120)
    assert level_of(one.thresholds, {"lel_pct": 30}) == "warning" and level_of(other.thresholds, {"lel_pct": 30}) == (
        "critical"
    )
    assert one.count == 1 and one.flap_transitions == 6, "fields not named keep the built-in value"
    lift = resolve_rule(spec, "elevator", "LIFT-1")
    assert level_of(lift.thresholds, {"state": "fault", "occupied": True}) == "major", "occupied dropped, state kept"
    assert resolve_rule(None, "gas", "GAS-1") == resolve_rule(AlarmRulesSpec(), "gas", "GAS-1")
    assert resolve_rule(None, "fixed_reader", "R1").thresholds == {}


def test_resolve_rule_takes_the_site_timezone_unless_the_rule_names_one() -> None:
    spec = AlarmRulesSpec.model_validate({"devices": {"D2": {"timezone": "Europe/Paris"}}})
    assert resolve_rule(spec, "door", "D1", timezone="Asia/Shanghai").timezone == "Asia/Shanghai"
    assert resolve_rule(spec, "door", "D2", timezone="Asia/Shanghai").timezone == "Europe/Paris"
    with pytest.raises(ValueError, match="unknown device kind 'gass'"):
        resolve_rule(spec, "gass", "D1")


def test_state_json_round_trip() -> None:
    r = rule("gas", clear_delay_s=0)
    d = feed(r, [(i * 10, {"lel_pct": 12 if i % 2 == 0 else 2}) for i in range(6)] + [(60, {"lel_pct": 30})])
    d += feed(rule("gas"), [(70, {"lel_pct": 15})], d[-1].state)
    st = d[-1].state
    assert st.flapping and st.clearing is not None and st.transitions and st.last_at is not None
    stored = json.loads(json.dumps(st.to_json()))
    assert isinstance(stored["last_at"], str)
    assert RuleState.from_json(stored) == st
    pending = feed(rule("gas", for_s=30), [(0, {"lel_pct": 12})])[0].state
    assert pending.pending is not None and RuleState.from_json(json.loads(json.dumps(pending.to_json()))) == pending
    assert RuleState.from_json(RuleState().to_json()) == RuleState()


@pytest.mark.parametrize(
    ("data", "message"),
    [({"v": 99}, "version 99"), ({"v": 1, "severity": "huge"}, "unknown severity 'huge'"),
     ({"v": 1, "pending": {"severity": "major"}}, "damaged")],
)  # fmt: skip
def test_a_damaged_state_is_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RuleState.from_json(data)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"defaults": {"gas": {"open_max_min": 5}}}, "open_max_min applies only to door sensors: remove it"),
        ({"defaults": {"gas": {"thresholds": {"lel": [{"value": 5, "severity": "warning"}]}}}},
         "gas readings have no field 'lel'; fields: co_ppm, lel_pct"),
        ({"defaults": {"gas": {"thresholds": {"lel_pct": [{"value": 30, "severity": "warning"},
                                                          {"value": 20, "severity": "critical"}]}}}},
         "critical at 20 must need a higher value than warning at 30"),
        ({"defaults": {"gas": {"thresholds": {"lel_pct": [{"op": ">=", "value": True, "severity": "major"}]}}}},
         "use op '==' or a number"),
        ({"defaults": {"door": {"allowed_hours": "7-22"}}}, "must look like '07:00-22:00'"),
        ({"defaults": {"door": {"allowed_hours": "07:00-07:00"}}}, "starts and ends at the same time"),
        ({"devices": {"D1": {"timezone": "Beijing"}}}, "not an IANA zone name"),
        ({"devices": {"D1": {"battery_low_pct": 30}}}, "alarm_rules.devices.D1: battery_ok_pct 25 must be above"),
        ({"devices": {"D1": {"for_s": -1}}}, "greater than or equal to 0"),
        ({"devices": {"D1": {"forS": 5}}}, "forS"),
        ({"defaults": {"gass": {}}}, "gass"),
    ],
)  # fmt: skip
def test_bad_config_says_what_to_change(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        AlarmRulesSpec.model_validate(section)
    assert message in str(err.value)


def test_check_devices_against_the_site() -> None:
    spec = AlarmRulesSpec.model_validate(
        {"devices": {"GAS-1": {"open_max_min": 3}, "NOPE": {}, "DOOR-1": {"open_max_min": 3}}}
    )
    problems = check_devices(spec, {"GAS-1": "gas", "DOOR-1": "door"})
    assert problems == [
        "alarm_rules.devices.GAS-1: open_max_min applies only to door sensors: remove it",
        "alarm_rules.devices.NOPE: no device 'NOPE' in this site: fix the code or remove it",
    ]


def test_values_are_described_in_both_languages() -> None:
    name = describe_values({"lel_pct": 27.5, "co_ppm": 3, "state": "fault", "extra": None})
    assert name.zh == "可燃气体 27.5 %LEL，一氧化碳 3 ppm，状态 故障"
    assert name.en == "gas 27.5 %LEL, CO 3 ppm, state fault"
