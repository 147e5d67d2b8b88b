"""Simulated field devices for the demo and for load: guards walking rounds with handheld
readers, sensors reporting readings, every device announcing its status (device contract v1), and
now and then a scripted incident (devices/incidents.py) so the demo shows alarms and tickets.

`SiteSimulator.step(now)` is pure and returns what to publish, so it is tested without a broker;
`run_simulator` publishes it to any broker URL.
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.broker_access import device_username
from core.config import BrokerAddress
from core.contract import event_topic, parse_topic, status_topic, tap_topic, telemetry_topic
from core.directory import READER_KINDS
from devices.incidents import Incident, Step, plan_incidents
from devices.outgoing import Outgoing, iso_ms
from storage.sitefile.schema import DeviceSpec, SiteFile

if TYPE_CHECKING:
    from devices.findings_reporter import ApiLogin

log = logging.getLogger(__name__)


def boot_id(start: datetime) -> str:
    """A device's boot id, as the contract asks of ids unique for a device's whole life: the
    start time in epoch ms (hex) and 16 random bits, so two runs started in the same millisecond
    (or with the clock set back) still differ. 15 characters: ids stay far below the 128 allowed."""
    return f"{int(start.timestamp() * 1000):x}{secrets.token_hex(2)}"


@dataclass
class _Walker:
    """A guard with a handheld reader following a route of checkpoint tags."""

    device: str
    route: list[str]
    every: timedelta
    next_at: datetime
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    position: int = 0


@dataclass
class _Sensor:
    device: DeviceSpec
    every: timedelta
    next_at: datetime
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class SiteSimulator:
    def __init__(
        self,
        site: SiteFile,
        start: datetime,
        rng: random.Random | None = None,
        tap_every_s: float = 3.0,
        telemetry_every_s: float = 10.0,
        boot: str | None = None,
        incidents: bool = True,
        exclude_readers: Collection[str] = (),
    ) -> None:
        """`incidents`: play the scripted incidents (devices/incidents.py), planned from `rng` after
        the rest, so a seed gives the same incidents at the same times. `exclude_readers`: handheld
        readers that tap no checkpoints at random (their guards walk rounds, devices/patrol_walker.py)."""
        self.site = site
        self.rng = rng or random.Random(7)
        # every run is a new boot: message ids are boot + sequence, so a restarted simulator never
        # reuses an id (its taps were answered as duplicates of the last run's, issue 6 item 5)
        self.boot = boot or boot_id(start)
        tags = [loc.tag for loc in site.locations if loc.tag]
        self.walkers = [
            _Walker(
                d.code,
                self._route(tags, i),
                timedelta(seconds=tap_every_s),
                start + timedelta(seconds=self.rng.uniform(0, tap_every_s)),
            )
            for i, d in enumerate(d for d in site.devices if d.kind == "handheld_reader")
        ]
        # filtered after the draws, so a seed gives the same sensors and incidents either way
        self.walkers = [w for w in self.walkers if w.device not in exclude_readers]
        self.sensors = [
            _Sensor(
                d,
                timedelta(seconds=telemetry_every_s),
                start + timedelta(seconds=self.rng.uniform(0, telemetry_every_s)),
            )
            for d in site.devices
            if d.kind not in READER_KINDS
        ]
        self._announced = False
        self.incidents = plan_incidents(site, start, self.rng) if incidents else []
        self._incidents_of: dict[str, list[Incident]] = {}
        for incident in self.incidents:
            self._incidents_of.setdefault(incident.device, []).append(incident)
        self._until = start  # incident steps up to here have been reported

    def _route(self, tags: list[str], index: int) -> list[str]:
        """Each guard starts at a different place and walks the site's checkpoints in order."""
        offset = (index * len(tags)) // max(1, sum(1 for d in self.site.devices if d.kind == "handheld_reader"))
        return tags[offset:] + tags[:offset]

    def status_messages(self, now: datetime) -> list[Outgoing]:
        return [
            Outgoing(
                status_topic(self.site.site.code, d.code),
                {
                    "ts": iso_ms(now),
                    "online": True,
                    "battery_pct": self.rng.randint(55, 100),
                    "rssi": self.rng.randint(-80, -45),
                    "fw": "1.4.2",
                },
                retain=True,
            )
            for d in self.site.devices
        ]

    def step(self, now: datetime) -> list[Outgoing]:
        out: list[Outgoing] = []
        if not self._announced:
            out += self.status_messages(now)
            self._announced = True
        for w in self.walkers:
            while w.next_at <= now:
                uid = w.route[w.position % len(w.route)]
                w.position += 1
                out.append(
                    Outgoing(
                        tap_topic(self.site.site.code, w.device),
                        {"id": f"{w.device}-{self.boot}-{next(w.seq):06d}", "ts": iso_ms(w.next_at), "uid": uid},
                    )
                )
                w.next_at += w.every
        for s in self.sensors:
            out += self._sensor_messages(s, now)
        self._until = max(self._until, now)
        return out

    def _sensor_messages(self, s: _Sensor, now: datetime) -> list[Outgoing]:
        """A sensor's periodic readings up to `now` and, during an incident, each of its steps at once
        (a device reports a change when it happens), in time order: the gateway ignores a reading
        older than one it has applied."""
        timed: list[tuple[datetime, int, Outgoing]] = []
        while s.next_at <= now:
            values = self._incident_values(s.device.code, s.next_at) or self._reading(s.device.kind)
            timed.append((s.next_at, 0, self._telemetry(s, s.next_at, values, qos=0)))
            s.next_at += s.every
        for incident in self._incidents_of.get(s.device.code, ()):
            for at, step in incident.steps_in(self._until, now):
                timed += self._step_messages(s, at, step)
        timed.sort(key=lambda t: (t[0], t[1]))
        return [m for _, _, m in timed]

    def _incident_values(self, device: str, at: datetime) -> dict[str, Any] | None:
        for incident in self._incidents_of.get(device, ()):
            values = incident.values_at(at)
            if values is not None:
                return dict(values)
        return None

    def _step_messages(self, s: _Sensor, at: datetime, step: Step) -> list[tuple[datetime, int, Outgoing]]:
        """An incident step: the reading at QoS 1 (it carries the alarm), and the device's own event."""
        out = [(at, 1, self._telemetry(s, at, dict(step.values), qos=1))]
        if step.event is not None:
            code = s.device.code
            payload = {"id": f"{code}-{self.boot}-{next(s.seq):06d}", "ts": int(at.timestamp() * 1000)}
            payload |= {"kind": s.device.kind, **step.event}
            out.append((at, 2, Outgoing(event_topic(self.site.site.code, code), payload)))
        return out

    def _telemetry(self, s: _Sensor, at: datetime, values: dict[str, Any], qos: int) -> Outgoing:
        code, ts = s.device.code, int(at.timestamp() * 1000)
        payload = {"id": f"{code}-{self.boot}-{next(s.seq):06d}", "ts": ts, "kind": s.device.kind, "values": values}
        return Outgoing(telemetry_topic(self.site.site.code, code), payload, qos=qos)

    def _reading(self, kind: str) -> dict[str, Any]:
        """A normal reading: below every built-in threshold, so only the scripted incidents alarm (a
        random wet reading or elevator fault used to open a ticket and clear it seconds later)."""
        r = self.rng
        readings: dict[str, dict[str, Any]] = {
            "water_leak": {"wet": False, "level_mm": round(r.uniform(0, 2), 1)},
            "gas": {"lel_pct": round(r.uniform(0, 4), 1), "co_ppm": r.randint(0, 8)},
            "elevator": {
                "state": "normal",
                "fault_code": None,
                "floor": r.randint(1, 18),
                "door": r.choice(["open", "closed"]),
                "occupied": r.random() < 0.4,
            },
            "electric_leak": {"leak_ma": round(r.uniform(0, 12), 1)},
            "smoke": {"alarm": False, "obscuration_pct": round(r.uniform(0, 1.5), 2)},
            "door": {"open": r.random() < 0.05},
        }
        return readings[kind]


def run_simulator(
    broker_url: str,
    site_file: Path,
    stop: threading.Event,
    *,
    tap_every_s: float = 3.0,
    telemetry_every_s: float = 10.0,
    duration_s: float | None = None,
    tick_s: float = 0.5,
    credentials: Mapping[str, str] | None = None,
    incidents: bool = True,
    walk_rounds: bool = True,
    api_login: ApiLogin | None = None,
) -> int:
    """Publish until `stop` is set or `duration_s` has passed; returns how many messages were sent.
    `incidents`: also play the scripted incidents (the first about 20 s after the start).
    `walk_rounds`: on a site with `plans:` the guards walk their rounds (devices/patrol_walker.py)
    instead of tapping at random; their findings go to the API as `api_login`, or only to the log.

    With `credentials` (username → password, as `patrol device provision` writes them) every device
    connects on its own with its own account, as real devices do on a broker with an ACL; without,
    one client (the URL's user, if any) publishes for all, which only an open broker accepts."""
    from core.config import BrokerAddress
    from devices.findings_reporter import FindingsReporter
    from devices.patrol_walker import PatrolWalker
    from storage.sitefile.parse import parse_site_file

    site = parse_site_file(site_file)
    broker = BrokerAddress.parse(broker_url)
    clients = _DeviceClients(broker, site, credentials)
    started = datetime.now(UTC)
    boot = boot_id(started)
    walker = PatrolWalker(site, started, random.Random(boot), boot=boot) if walk_rounds and site.plans else None
    sim = SiteSimulator(
        site,
        started,
        tap_every_s=tap_every_s,
        telemetry_every_s=telemetry_every_s,
        boot=boot,
        incidents=incidents,
        exclude_readers=walker.devices if walker else (),
    )
    reporter = FindingsReporter(api_login) if walker and api_login else None
    sent = 0
    log.info(
        "simulating %d readers (%d more walking rounds) and %d sensors at site %s via %s:%s",
        len(sim.walkers),
        len(walker.devices) if walker else 0,
        len(sim.sensors),
        site.site.code,
        broker.host,
        broker.port,
    )
    try:
        while not stop.wait(tick_s):
            now = datetime.now(UTC)
            if duration_s is not None and (now - started).total_seconds() > duration_s:
                break
            taps, findings = walker.step(now) if walker else ([], [])
            for msg in sim.step(now) + taps:
                clients.publish(msg)
                sent += 1
            for finding in findings:
                if reporter:
                    reporter.submit(finding)
                else:
                    log.info("finding (not reported: no API login): %s at %s", finding.category, finding.location)
    finally:
        if reporter:
            reporter.close()
        clients.close()
    return sent


class _DeviceClients:
    """One MQTT client per device account (or one shared client when no credentials are given)."""

    def __init__(self, broker: BrokerAddress, site: SiteFile, credentials: Mapping[str, str] | None) -> None:
        self._broker = broker
        self._shared: Any = None
        self._by_device: dict[str, Any] = {}
        if credentials is None:
            self._shared = self._connect(f"patrol-sim-{site.site.code}", broker.username, broker.password)
            return
        for d in site.devices:
            username = device_username(site.site.code, d.code)
            if username not in credentials:
                raise ValueError(f"no MQTT credentials for device {username}: run `patrol device provision` again")
            self._by_device[d.code] = self._connect(username, username, credentials[username])

    def _connect(self, client_id: str, username: str | None, password: str | None) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if username:
            client.username_pw_set(username, password)
        if self._broker.tls:
            client.tls_set()
        client.reconnect_delay_set(1, 30)
        client.connect_async(self._broker.host, self._broker.port, keepalive=30)
        client.loop_start()
        return client

    def publish(self, msg: Outgoing) -> None:
        topic = parse_topic(msg.topic)
        client = self._shared or (self._by_device.get(topic.device) if topic else None)
        if client is None:
            log.warning("no client for %s: not published", msg.topic)
            return
        client.publish(msg.topic, msg.encoded(), qos=msg.qos, retain=msg.retain)

    def close(self) -> None:
        for client in [self._shared, *self._by_device.values()]:
            if client is not None:
                client.loop_stop()
                client.disconnect()
