"""A small directory built by hand, for rules tested without a database."""

from __future__ import annotations

from datetime import UTC, datetime

from core.directory import DeviceEntry, Directory, Named, TagEntry
from gateway.messages import Received

HANDHELD = DeviceEntry(
    id=1, site_id=1, site_code="s", code="rdr-h01", kind="handheld_reader", location_id=None, holder_id=7
)
FIXED = DeviceEntry(
    id=2, site_id=1, site_code="s", code="rdr-gate", kind="fixed_reader", location_id=11, holder_id=None
)
GAS = DeviceEntry(id=3, site_id=1, site_code="s", code="gas-1", kind="gas", location_id=10, holder_id=None)
CHECKPOINT_UID = "04AAAAAAAAAAAA"
BADGE_UID = "04BBBBBBBBBBBB"


def directory() -> Directory:
    return Directory(
        devices={("s", d.code): d for d in (HANDHELD, FIXED, GAS)},
        tags={(1, CHECKPOINT_UID): TagEntry(CHECKPOINT_UID, 10, None), (1, BADGE_UID): TagEntry(BADGE_UID, None, 7)},
        locations={
            10: Named(10, "B3-F12-PW", "3栋 12F 管井房", "Building 3 12F pipe well"),
            11: Named(11, "GATE-N", "北门", "North gate"),
        },
        staff={7: Named(7, "G001", "张伟", "Zhang Wei")},
    )


def received(topic: str, payload: bytes, mid: int = 1) -> Received:
    return Received(topic=topic, payload=payload, qos=1, mid=mid, retain=False, received_at=datetime.now(UTC))
