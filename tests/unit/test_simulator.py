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


def test_a_restarted_simulator_never_reuses_a_message_id(demo_site: SiteFile) -> None:
    """Issue 6 item 5: ids restarted at 1 after a restart, so the second run's taps were answered
    as duplicates of the first run's (with another checkpoint's verdict). Each run is a new boot."""
    start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    runs = [SiteSimulator(demo_site, start, rng=random.Random(1)) for _ in range(2)]  # same start, same seed
    ids = [{m.payload["id"] for m in sim.step(start + timedelta(seconds=30)) if "id" in m.payload} for sim in runs]
    assert ids[0] and len(ids[0]) == len(ids[1]) and not ids[0] & ids[1]
    assert runs[0].boot != runs[1].boot
    assert all(len(i) <= 128 and runs[0].boot in i for i in ids[0])
