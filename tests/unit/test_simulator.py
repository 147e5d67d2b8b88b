"""The demo devices speak the contract: everything they publish decodes as Accepted."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from core.alarm_rules import (
    AlarmRulesSpec,
    Decision,
    KindRule,
    RuleState,
    evaluate,
    evaluate_due,
    evaluate_event,
    resolve_rule,
)
from core.directory import DeviceEntry, Directory
from devices.incidents import EVERY, JITTER, MAX_INCIDENTS, ORDER, SENSOR_OF, Incident, plan_incidents
from devices.simulator import SiteSimulator
from gateway.decode import decode
from gateway.messages import Accepted, Received
from storage.sitefile.schema import SiteFile


def _directory(site: SiteFile) -> Directory:
    return Directory(
        devices={
            (site.site.code, d.code): DeviceEntry(i, 1, site.site.code, d.code, d.kind, None, None)
            for i, d in enumerate(site.devices)
        }
    )


def test_simulated_devices_follow_the_contract(demo_site: SiteFile) -> None:
    start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    sim = SiteSimulator(demo_site, start, rng=random.Random(1), tap_every_s=3, telemetry_every_s=10)
    out = sim.step(start) + sim.step(start + timedelta(seconds=60))
    directory = _directory(demo_site)
    channels = {m.topic.rsplit("/", 1)[1] for m in out}
    assert channels == {"status", "tap", "telemetry"}
    taps = [m for m in out if m.topic.endswith("/tap")]
    assert len(taps) >= 6 * 19  # six guards, one tap every 3 s for a minute
    assert len({m.payload["id"] for m in taps}) == len(taps)
    for m in out:
        decoded = decode(Received(m.topic, m.encoded(), m.qos, 1, m.retain, start), directory)
        assert isinstance(decoded, Accepted), (m.topic, m.payload, decoded)


def test_guards_walk_real_checkpoints(demo_site: SiteFile) -> None:
    start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    sim = SiteSimulator(demo_site, start)
    tags = {loc.tag for loc in demo_site.locations if loc.tag}
    taps = [m for m in sim.step(start + timedelta(seconds=30)) if m.topic.endswith("/tap")]
    assert taps and all(m.payload["uid"] in tags for m in taps)


def test_a_restarted_simulator_never_reuses_a_message_id(demo_site: SiteFile) -> None:
    """Issue 6 item 5: ids restarted at 1 after a restart, so the second run's taps were answered
    as duplicates of the first run's (with another checkpoint's verdict). Each run is a new boot."""
    start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    runs = [SiteSimulator(demo_site, start, rng=random.Random(1)) for _ in range(2)]  # same start, same seed
    ids = [{m.payload["id"] for m in sim.step(start + timedelta(seconds=30)) if "id" in m.payload} for sim in runs]
    assert ids[0] and len(ids[0]) == len(ids[1]) and not ids[0] & ids[1]
    assert runs[0].boot != runs[1].boot
    assert all(len(i) <= 128 and runs[0].boot in i for i in ids[0])


# ----------------------------------------------------------------------------- scripted incidents

START = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def test_incidents_come_in_order_the_first_within_30_s_then_every_few_minutes_and_bounded(
    demo_site: SiteFile,
) -> None:
    plan = plan_incidents(demo_site, START, random.Random(3))
    assert len(plan) == MAX_INCIDENTS
    assert plan[0].kind == "water_leak" and plan[0].start - START <= timedelta(seconds=30)
    assert [i.kind for i in plan[:8]] == [*ORDER, *ORDER]
    gaps = [b.start - a.start for a, b in itertools.pairwise(plan)]
    assert all(EVERY <= g <= EVERY + JITTER for g in gaps)
    kinds = {d.code: d.kind for d in demo_site.devices}
    assert all(kinds[i.device] == SENSOR_OF[i.kind] == i.sensor_kind for i in plan)
    assert len(plan_incidents(demo_site, START, random.Random(3), limit=5)) == 5


def test_the_plan_is_the_same_for_a_seed_and_no_device_has_two_incidents_at_once(demo_site: SiteFile) -> None:
    plans = [plan_incidents(demo_site, START, random.Random(seed)) for seed in (3, 3, 4)]
    assert plans[0] == plans[1]
    assert [i.device for i in plans[0]] != [i.device for i in plans[2]]
    by_device: dict[str, list[Incident]] = {}
    for incident in plans[0]:
        by_device.setdefault(incident.device, []).append(incident)
    for incidents in by_device.values():
        assert all(a.end <= b.start for a, b in itertools.pairwise(incidents))


@pytest.mark.parametrize(
    ("kind", "field", "expected"),
    [
        # P5 §2.4.1: water on the floor, then dry again
        ("water_leak", "wet", [True, True, True, False]),
        # P5 §2.4.5(2): 3 → 12 (warning) → 30 (critical) → back down
        ("gas_rise", "lel_pct", [3.0, 12.0, 30.0, 12.0, 5.0, 3.0]),
        # P5 §2.4.2: stuck with a passenger inside, then released
        ("trapped", "state", ["fault", "normal"]),
        # P1 §2.9: a machine-room door left open, then closed
        ("door_left_open", "open", [True, False]),
    ],
)
def test_each_incident_plays_its_script(demo_site: SiteFile, kind: str, field: str, expected: list[object]) -> None:
    incident = next(i for i in plan_incidents(demo_site, START, random.Random(3)) if i.kind == kind)
    steps = incident.steps_in(incident.start - timedelta(seconds=1), incident.end)
    assert [s.values[field] for _, s in steps] == expected
    assert incident.values_at(incident.start - timedelta(seconds=1)) is None
    assert incident.values_at(incident.end) is None  # normal readings again
    assert incident.values_at(incident.start) == steps[0][1].values


def test_a_trapped_passenger_is_the_elevators_own_e31_alarm_event_then_clear(demo_site: SiteFile) -> None:
    """P5 §2.4.2: the controller's event carries trapped: true (critical); the readings agree meanwhile."""
    incident = next(i for i in plan_incidents(demo_site, START, random.Random(3)) if i.kind == "trapped")
    events = [s.event for s in incident.steps]
    assert [(e["state"], e["code"], e["detail"]["trapped"]) for e in events if e] == [
        ("alarm", "E31", True),
        ("clear", "E31", False),
    ]
    assert incident.steps[0].values["occupied"] is True and incident.steps[0].values["fault_code"] == "E31"


@pytest.mark.parametrize(("override", "held_min"), [(None, 11), (1, 2)])
def test_a_door_is_held_open_past_its_rules_limit(demo_site: SiteFile, override: float | None, held_min: int) -> None:
    """P1 §2.9: open longer than `open_max_min` (built-in 10, or the site's override) alarms; the door
    is held open a minute past it, so the demo's door alarm really comes."""
    site = demo_site
    if override is not None:
        rules = AlarmRulesSpec(defaults={"door": KindRule(open_max_min=override)})
        site = demo_site.model_copy(update={"alarm_rules": rules})
    incident = next(i for i in plan_incidents(site, START, random.Random(3)) if i.kind == "door_left_open")
    assert incident.end - incident.start == timedelta(minutes=held_min)


def test_a_simulator_without_incidents_sends_only_normal_readings(demo_site: SiteFile) -> None:
    sim = SiteSimulator(demo_site, START, incidents=False)
    assert sim.incidents == []
    alarms = _replay(demo_site, sim, timedelta(minutes=5))
    assert not any(alarms.values())


def test_the_demo_raises_each_incidents_alarm_and_clears_it(demo_site: SiteFile) -> None:
    """What the simulator publishes, run through the real alarm rules (pure) and the decoder: the
    first alarm (a water leak, P5 §2.4.1) within 30 s; the gas rise reaches critical (P5 §2.4.5(2));
    the trapped passenger is critical (P5 §2.4.2); the door left open alarms (P1 §2.9); all clear."""
    sim = SiteSimulator(demo_site, START, rng=random.Random(5))
    first = {kind: next(i for i in sim.incidents if i.kind == kind) for kind in ORDER}
    log = _replay(demo_site, sim, first["door_left_open"].end - START + timedelta(minutes=3))
    leak = log[first["water_leak"].device]
    assert leak[0][1] == "major" and leak[0][0] - START <= timedelta(seconds=30)
    assert [s for _, s in log[first["gas_rise"].device]][:2] == ["warning", "critical"]
    assert "critical" in {s for _, s in log[first["trapped"].device]}
    door = log[first["door_left_open"].device]
    assert door[0] == (first["door_left_open"].start + timedelta(minutes=10), "warning")
    for incident in first.values():
        assert log[incident.device][-1][1] is None, incident  # cleared in the end


def _replay(site: SiteFile, sim: SiteSimulator, span: timedelta) -> dict[str, list[tuple[datetime, str | None]]]:
    """Tick the simulator every 0.5 s for `span`, decode each message as the gateway does and apply it
    to its device's rule state; per device, the (time, severity) of every change of its alarm."""
    directory = _directory(site)
    kinds = {d.code: d.kind for d in site.devices}
    states: dict[str, RuleState] = {}
    due: dict[str, datetime] = {}
    log: dict[str, list[tuple[datetime, str | None]]] = {}

    def apply(device: str, decision: Decision, at: datetime) -> None:
        if decision.state.severity != states.get(device, RuleState()).severity:
            log.setdefault(device, []).append((at, decision.state.severity))
        states[device] = decision.state
        due.pop(device, None)
        if decision.due_at is not None:
            due[device] = decision.due_at

    now = START
    while now <= START + span:
        for device, at in sorted(due.items()):
            if at <= now:
                apply(device, evaluate_due(_rule(site, kinds[device]), states[device], at), at)
        for m in sim.step(now):
            decoded = decode(Received(m.topic, m.encoded(), m.qos, 1, m.retain, now), directory)
            assert isinstance(decoded, Accepted), (m.topic, m.payload, decoded)
            device, channel = m.topic.split("/")[-2:]
            if channel not in ("telemetry", "event"):
                continue
            rule, state, at = _rule(site, kinds[device]), states.get(device, RuleState()), _ms(m.payload["ts"])
            if channel == "telemetry":
                apply(device, evaluate(rule, state, at, m.payload["values"]), at)
            else:
                p = m.payload
                apply(device, evaluate_event(rule, state, at, p["kind"], p["state"], p["code"], p["detail"]), at)
        now += timedelta(seconds=0.5)
    return log


def _rule(site: SiteFile, kind: str) -> KindRule:
    return resolve_rule(site.alarm_rules, kind, "", timezone=site.site.timezone)


def _ms(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, UTC)
