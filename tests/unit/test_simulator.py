"""The demo devices speak the contract: everything they publish decodes as Accepted."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from core.directory import DeviceEntry, Directory
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
