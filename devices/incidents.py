"""Scripted incidents for the demo: a water leak, a gas rise, a trapped passenger, a machine-room door
left open, one after the other, so `patrol demo` shows alarms and emergency tickets within a minute.

Why scripted and not random noise: a random wet reading now and then raised an alarm, opened a
ticket and cleared again seconds later, which shows nothing a control room would recognise. A
script plays out an incident as a real one unfolds (P5 §2.4.1, §2.4.2, §2.4.5(2); P1 §2.9).

The plan is pure: `plan_incidents(site, start, rng)` decides every incident of a run up front
(which device, when, which readings), deterministic for a seed and bounded in number; the
simulator (devices/simulator.py) only asks it what a device reads at a time and which steps fall
in a tick, reporting each step at once as a device reports a change.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from core.alarm_rules_config import resolve_rule
from storage.sitefile.schema import SiteFile

IncidentKind = Literal["water_leak", "gas_rise", "trapped", "door_left_open"]
#: Incident kinds in the order they come; the first (a water leak) alarms on its first reading.
ORDER: tuple[IncidentKind, ...] = ("water_leak", "gas_rise", "trapped", "door_left_open")
SENSOR_OF: dict[IncidentKind, str] = {
    "water_leak": "water_leak",
    "gas_rise": "gas",
    "trapped": "elevator",
    "door_left_open": "door",
}
FIRST_AFTER = timedelta(seconds=20)  # the first incident starts this long after the simulator
EVERY = timedelta(minutes=3)  # ... and the next ones this far apart (plus up to JITTER)
JITTER = timedelta(seconds=30)
MAX_INCIDENTS = 40  # about two hours of demo; then only normal readings
DOOR_MARGIN = timedelta(minutes=1)  # a door is held open its rule's limit plus this


@dataclass(frozen=True, slots=True)
class Step:
    """From `after` (since the incident's start) the device reads `values`; `event`, if set, is the
    device's own alarm/clear event (`state`, `code`, `detail` of the contract's event payload)."""

    after: timedelta
    values: Mapping[str, Any]
    event: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    kind: IncidentKind
    device: str
    sensor_kind: str
    start: datetime
    steps: tuple[Step, ...]  # the last step is the device back to normal, at `end`

    @property
    def end(self) -> datetime:
        return self.start + self.steps[-1].after

    def values_at(self, at: datetime) -> Mapping[str, Any] | None:
        """What the device reads at `at` during the incident; None outside it (normal readings)."""
        if not self.start <= at < self.end:
            return None
        return next(s.values for s in reversed(self.steps) if self.start + s.after <= at)

    def steps_in(self, after: datetime, until: datetime) -> list[tuple[datetime, Step]]:
        """The steps that happen in (after, until], each with its time: each is reported at once."""
        return [(self.start + s.after, s) for s in self.steps if after < self.start + s.after <= until]


def _seconds(s: float) -> timedelta:
    return timedelta(seconds=s)


def water_leak_steps() -> tuple[Step, ...]:
    """Water on the pump-room floor, rising, then dry again once the valve is closed (P5 §2.4.1)."""
    return (
        Step(_seconds(0), {"wet": True, "level_mm": 6.5}),
        Step(_seconds(20), {"wet": True, "level_mm": 18.0}),
        Step(_seconds(50), {"wet": True, "level_mm": 9.0}),
        Step(_seconds(90), {"wet": False, "level_mm": 0.5}),
    )


def gas_rise_steps() -> tuple[Step, ...]:
    """3 → 12 (warning, ≥ 10 %LEL) → 30 (critical, ≥ 25 %LEL) → back down (P5 §2.4.5(2)); the low
    values last longer than the gas rule's 60 s clear delay, so the alarm falls and clears."""
    levels = ((0, 3.0, 2), (15, 12.0, 6), (30, 30.0, 14), (75, 12.0, 8), (120, 5.0, 3), (180, 3.0, 1))
    return tuple(Step(_seconds(t), {"lel_pct": lel, "co_ppm": co}) for t, lel, co in levels)


def trapped_steps(floor: int) -> tuple[Step, ...]:
    """The car stops between floors with a passenger inside: fault E31 and the controller's own alarm
    event with `trapped` (critical, P5 §2.4.2); two minutes later it is released and cleared. The
    readings agree with the event meanwhile, so a reading never clears what the event raised."""
    stuck = {"state": "fault", "fault_code": "E31", "floor": floor, "door": "closed", "occupied": True}
    released = {"state": "normal", "fault_code": None, "floor": floor, "door": "open", "occupied": False}
    return (
        Step(_seconds(0), stuck, {"state": "alarm", "code": "E31", "detail": {"trapped": True, "floor": floor}}),
        Step(_seconds(120), released, {"state": "clear", "code": "E31", "detail": {"trapped": False, "floor": floor}}),
    )


def door_steps(hold: timedelta) -> tuple[Step, ...]:
    """A machine-room door left open for `hold`, then closed (P1 §2.9)."""
    return (Step(_seconds(0), {"open": True}), Step(hold, {"open": False}))


def door_hold(site: SiteFile, device: str) -> timedelta:
    """Long enough for the site's door rule to alarm: its `open_max_min` plus a minute (the built-in
    10 min unless the site file's `alarm_rules:` says otherwise); 2 min if the rule sets no limit."""
    rule = resolve_rule(site.alarm_rules, "door", device, timezone=site.site.timezone)
    if rule.open_max_min is None:
        return timedelta(minutes=2)
    return timedelta(minutes=rule.open_max_min) + DOOR_MARGIN


def plan_incidents(
    site: SiteFile,
    start: datetime,
    rng: random.Random,
    *,
    first_after: timedelta = FIRST_AFTER,
    every: timedelta = EVERY,
    limit: int = MAX_INCIDENTS,
) -> list[Incident]:
    """At most `limit` incidents: the first `first_after` from `start`, then one every `every` (plus
    up to JITTER), kinds in ORDER (a kind with no device on the site is left out), each on a device
    of its kind in a seeded rotation that skips a device still busy with an earlier incident."""
    devices = {k: sorted(d.code for d in site.devices if d.kind == SENSOR_OF[k]) for k in ORDER}
    kinds = [k for k in ORDER if devices[k]]
    for codes in devices.values():
        rng.shuffle(codes)
    turn = dict.fromkeys(kinds, 0)
    busy_until: dict[str, datetime] = {}
    plan: list[Incident] = []
    at = start + first_after
    for i in range(limit if kinds else 0):
        kind = kinds[i % len(kinds)]
        codes = devices[kind]
        free = [c for c in codes[turn[kind] :] + codes[: turn[kind]] if busy_until.get(c, start) <= at]
        if free:
            code = free[0]
            turn[kind] = (codes.index(code) + 1) % len(codes)
            incident = Incident(kind, code, SENSOR_OF[kind], at, _steps(kind, site, code, rng))
            busy_until[code] = incident.end
            plan.append(incident)
        at += every + timedelta(seconds=round(rng.uniform(0, JITTER.total_seconds())))
    return plan


def _steps(kind: IncidentKind, site: SiteFile, device: str, rng: random.Random) -> tuple[Step, ...]:
    if kind == "water_leak":
        return water_leak_steps()
    if kind == "gas_rise":
        return gas_rise_steps()
    if kind == "trapped":
        return trapped_steps(rng.randint(2, 18))
    return door_steps(door_hold(site, device))
