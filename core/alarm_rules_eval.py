"""Alarm evaluation: readings, device events, status messages and due times → alarm decisions.

Pure functions of (rule, state, time, input) → `Decision`; the caller stores `decision.state` and,
when `due_at` is set, schedules `evaluate_due` then. The rules, in short:
- the first raise waits until the condition has held `for_s` and `count` readings in a row (a door:
  `open_max_min`, or at once outside `allowed_hours`, P1 §2.9);
- an active alarm rises at once when readings get worse;
- it falls or clears only once the lower level has held `clear_delay_s` and `clear_count` readings
  (hysteresis), falling to the worst level seen meanwhile;
- a reading older than the last one applied is ignored (one sensor's messages may reach two
  gateway workers and arrive out of order);
- `flap_transitions` changes within `flap_window_s` make the alarm flapping: one notification
  says so, later changes are still decided but quiet, except a rise above the worst level seen.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from core.alarm_rules_config import KindRule, Severity, Threshold, severity_rank
from core.alarm_rules_state import Action, Clearing, Decision, Pending, RuleState
from core.alarm_rules_text import describe_values

StatusAlarm = Literal["offline", "low_battery"]


def level_of(thresholds: Mapping[str, tuple[Threshold, ...]], values: Mapping[str, Any]) -> Severity | None:
    """The worst severity whose threshold the values meet; None: no alarm condition."""
    worst: Severity | None = None
    for name, levels in thresholds.items():
        for t in levels:
            if _meets(values.get(name), t.op, t.value) and all(
                _meets(values.get(k), "==", v) for k, v in t.when.items()
            ):
                worst = _worst(worst, t.severity)
    return worst


def evaluate(rule: KindRule, state: RuleState, observed_at: datetime, values: Mapping[str, Any]) -> Decision:
    """Apply one telemetry reading taken at `observed_at` (the device's `ts`)."""
    if _stale(state, observed_at):
        return _unchanged(rule, state, stale=True)
    target = level_of(rule.thresholds, values)
    st = replace(state, last_at=observed_at, last_level=target, last_value=dict(values))
    if st.severity is None:
        p = st.pending
        pending = None if target is None else Pending(target, p.since if p else observed_at, (p.count if p else 0) + 1)
        st = replace(st, pending=pending, clearing=None)
    elif target is not None and severity_rank(target) >= severity_rank(st.severity):  # stop clearing; worse rises
        rise = Pending(target, observed_at, 1) if target != st.severity else None
        st = replace(st, pending=rise, clearing=None)
    else:
        c = st.clearing
        to = target if c is None else _worst(c.to, target)
        st = replace(st, pending=None, clearing=Clearing(to, c.since if c else observed_at, (c.count if c else 0) + 1))
    return _decide(rule, state, st, observed_at)


def evaluate_due(rule: KindRule, state: RuleState, now: datetime) -> Decision:
    """Run when a `due_at` passes with no new input: a duration completed, a clear delay ended, a door
    limit or window edge was reached, flapping may have ended. Early or repeated calls do nothing."""
    return _decide(rule, state, state, now)


def evaluate_event(
    rule: KindRule,
    state: RuleState,
    observed_at: datetime,
    event_kind: str,
    event_state: Literal["alarm", "clear"],
    code: str | None,
    detail: Mapping[str, Any],
) -> Decision:
    """A device's own alarm/clear event: raised or cleared at once (the device has debounced it).

    Its severity is the kind's `event_severity`, worse if `event_thresholds` match `detail` (an
    elevator event with `detail.trapped` is critical, P5 §2.4.2). `event_kind` is not checked here:
    the gateway already refuses an event whose kind is not the sensor's."""
    if _stale(state, observed_at):
        return _unchanged(rule, state, stale=True)
    shown = {"event": event_state, **({"code": code} if code else {}), **detail}
    if event_state == "alarm":
        level: Severity | None = _worst(rule.event_severity, level_of(rule.event_thresholds, detail))
        severity = level if severity_rank(level) > severity_rank(state.severity) else state.severity
    else:
        level = severity = None
    return _set(rule, state, observed_at, severity, level, shown)


def evaluate_status(
    rule: KindRule,
    alarm_type: StatusAlarm,
    state: RuleState,
    observed_at: datetime,
    *,
    online: bool,
    battery_pct: int | None = None,
) -> Decision:
    """A status message (or Last Will) for the `offline` or `low_battery` alarm of one device.

    Offline: `online: false` raises at once, `online: true` clears at once. Low battery: below
    `battery_low_pct` raises, at or above `battery_ok_pct` clears, in between nothing changes. Pass
    the broker's receipt time as `observed_at` for both (a Last Will has no device `ts`)."""
    if _stale(state, observed_at):
        return _unchanged(rule, state, stale=True)
    if alarm_type == "offline":
        level = None if online else rule.offline_severity
        return _set(rule, state, observed_at, level, level, {"online": online})
    if battery_pct is None:
        return _unchanged(rule, state)
    level = rule.battery_severity if battery_pct < rule.battery_low_pct else None
    keep = state.severity if level is None and battery_pct < rule.battery_ok_pct else level
    return _set(rule, state, observed_at, keep, level, {"battery_pct": battery_pct})


def silence_limit(rule: KindRule, last_seen: datetime) -> datetime:
    """When a device heard from last at `last_seen` counts as offline."""
    return last_seen + timedelta(seconds=rule.expected_interval_s * rule.missed_intervals)


def offline_due(rule: KindRule, state: RuleState, last_seen: datetime, now: datetime) -> Decision:
    """The `offline` alarm for silence: raised once nothing was heard for `expected_interval_s` ×
    `missed_intervals`; otherwise `due_at` is when to look again. Clearing is `evaluate_status`'s."""
    limit = silence_limit(rule, last_seen)
    if state.severity is not None:
        return _unchanged(rule, state)
    if now < limit:
        return replace(_unchanged(rule, state), due_at=limit)
    st = replace(state, severity=rule.offline_severity, pending=None, clearing=None)
    return _finish(rule, state, st, now, "raise")


def _set(
    rule: KindRule,
    state: RuleState,
    at: datetime,
    severity: Severity | None,
    level: Severity | None,
    shown: Mapping[str, Any],
) -> Decision:
    """Put the alarm at `severity` at once (events, status), with no pending or clearing left."""
    st = replace(state, severity=severity, pending=None, clearing=None, last_at=at, last_level=level, last_value=shown)
    return _finish(rule, state, st, at, _action(state.severity, severity))


def _decide(rule: KindRule, before: RuleState, st: RuleState, at: datetime) -> Decision:
    """Raise, rise, fall or clear whatever has become due in `st` at `at`."""
    action: Action | None = None
    p, c = st.pending, st.clearing
    if p is not None and st.severity is None and p.count >= rule.count and at >= _raise_at(rule, p):
        st, action = replace(st, severity=p.severity, pending=None), "raise"
    elif p is not None and st.severity is not None and severity_rank(p.severity) > severity_rank(st.severity):
        st, action = replace(st, severity=p.severity, pending=None), "rise"
    elif c is not None and c.count >= rule.clear_count and at >= c.since + _s(rule.clear_delay_s):
        st, action = replace(st, severity=c.to, clearing=None), "clear" if c.to is None else "fall"
        if c.to is not None and st.last_at is not None and severity_rank(st.last_level) < severity_rank(c.to):
            st = replace(st, clearing=Clearing(st.last_level, st.last_at, 1))  # the latest reading is lower still
    return _finish(rule, before, st, at, action)


def _finish(rule: KindRule, before: RuleState, st: RuleState, at: datetime, action: Action | None) -> Decision:
    """Record the transition, update flapping, and say when to look again."""
    window = _s(rule.flap_window_s)
    times = sorted(t for t in st.transitions if t > at - window)
    if action is not None:
        times.append(at)
    times = times[-rule.flap_transitions :]
    started = ended = quiet = False
    flapping, peak = st.flapping, st.flap_peak
    if not flapping and len(times) >= rule.flap_transitions:
        flapping = started = quiet = True
        peak = _worst(before.severity, st.severity)
    elif flapping and action is not None:
        quiet = not (action in ("raise", "rise") and severity_rank(st.severity) > severity_rank(peak))
        peak = _worst(peak, st.severity)
    elif flapping and len(times) < _calm_below(rule):
        flapping, peak, ended = False, None, True
    st = replace(st, transitions=tuple(times), flapping=flapping, flap_peak=peak)
    return Decision(
        state=st,
        action=action,
        severity=st.severity,
        due_at=_due(rule, st),
        flapping_started=started,
        flapping_ended=ended,
        quiet=quiet,
        value=describe_values(st.last_value) if st.last_value else None,
    )


def _unchanged(rule: KindRule, state: RuleState, *, stale: bool = False) -> Decision:
    value = describe_values(state.last_value) if state.last_value else None
    return Decision(state, None, state.severity, _due(rule, state), stale=stale, value=value)


def _due(rule: KindRule, st: RuleState) -> datetime | None:
    times: list[datetime] = []
    if st.severity is None and st.pending is not None and st.pending.count >= rule.count:
        times.append(_raise_at(rule, st.pending))
    if st.severity is not None and st.clearing is not None and st.clearing.count >= rule.clear_count:
        times.append(st.clearing.since + _s(rule.clear_delay_s))
    if st.flapping and st.transitions:
        calm = _calm_below(rule)
        times.append(st.transitions[max(len(st.transitions) - calm, 0)] + _s(rule.flap_window_s))
    return min(times) if times else None


def _calm_below(rule: KindRule) -> int:
    """Flapping ends when fewer than this many changes remain in the window (half: hysteresis)."""
    return (rule.flap_transitions + 1) // 2


def _raise_at(rule: KindRule, p: Pending) -> datetime:
    """When a pending condition has held long enough (counts aside). A door (`open_max_min` set):
    after `open_max_min`, or as soon as it is open outside `allowed_hours` (P1 §2.9)."""
    at = p.since + _s(rule.for_s)
    if rule.open_max_min is None:
        return at
    too_long = max(at, p.since + timedelta(minutes=rule.open_max_min))
    outside = _outside_hours_from(rule, p.since)
    return too_long if outside is None else min(too_long, max(at, outside))


def _outside_hours_from(rule: KindRule, since: datetime) -> datetime | None:
    """The first time from `since` on that is outside `allowed_hours` (None: no hours set)."""
    hours = rule.hours()
    if hours is None:
        return None
    start, end = hours
    zone = zoneinfo.ZoneInfo(rule.timezone) if rule.timezone else UTC
    local = since.astimezone(zone)
    for day in (local.date() - timedelta(days=1), local.date()):
        opens = datetime.combine(day, start, tzinfo=zone)
        closes = datetime.combine(day + timedelta(days=1) if end <= start else day, end, tzinfo=zone)
        if opens <= local < closes:
            return closes.astimezone(UTC)
    return since


def _stale(state: RuleState, observed_at: datetime) -> bool:
    return state.last_at is not None and observed_at < state.last_at


def _action(old: Severity | None, new: Severity | None) -> Action | None:
    if old == new:
        return None
    if old is None:
        return "raise"
    if new is None:
        return "clear"
    return "rise" if severity_rank(new) > severity_rank(old) else "fall"


def _worst(a: Severity | None, b: Severity | None) -> Severity | None:
    return a if severity_rank(a) >= severity_rank(b) else b


def _meets(actual: Any, op: str, expected: bool | float | str) -> bool:
    if actual is None:
        return False
    if op in ("==", "!="):
        same = type(actual) is bool if isinstance(expected, bool) else not isinstance(actual, bool)
        equal = same and actual == expected
        return equal if op == "==" else not equal
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False  # a text or true/false where a number is compared never meets a threshold
    a, e = float(actual), float(expected)
    return {">=": a >= e, ">": a > e, "<=": a <= e, "<": a < e}[op]


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
