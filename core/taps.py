"""Resolving a tap to (guard, checkpoint) and the verdict the reader shows (CONTRACT.md, P1 §2.3).

Pure: takes the reader, the tag UID and the directory; no broker, no database, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.contract import AckPayload, Reason
from core.directory import DeviceEntry, Directory
from core.i18n import reason_message


@dataclass(frozen=True, slots=True)
class TapDecision:
    ok: bool
    reason: Reason | None
    guard_id: int | None
    location_id: int | None

    def ack(self, msg_id: str, directory: Directory) -> AckPayload:
        place = directory.locations.get(self.location_id) if self.location_id else None
        guard = directory.staff.get(self.guard_id) if self.guard_id else None
        return AckPayload(
            id=msg_id,
            ok=self.ok,
            reason=self.reason.value if self.reason else None,
            checkpoint=place.name_zh if place else None,
            checkpoint_en=place.name_en if place else None,
            guard=guard.code if guard else None,
            message=reason_message(self.reason.value if self.reason else None),
        )


def decide_tap(reader: DeviceEntry, uid: str, directory: Directory) -> TapDecision:
    """A handheld reader (巡更棒) reads checkpoint tags and is held by a guard for the shift;
    a reader fixed at a checkpoint reads guards' badges."""
    tag = directory.tag(reader.site_id, uid)
    if reader.kind == "handheld_reader":
        if tag is None or tag.location_id is None:
            return TapDecision(False, Reason.UNKNOWN_TAG, reader.holder_id, None)
        return TapDecision(True, None, reader.holder_id, tag.location_id)
    if tag is None or tag.staff_id is None:
        return TapDecision(False, Reason.UNKNOWN_TAG, None, reader.location_id)
    return TapDecision(True, None, tag.staff_id, reader.location_id)
