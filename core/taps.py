"""Resolving a tap to (guard, checkpoint), the verdict the reader shows, and the answer rebuilt from
a stored sign-in (CONTRACT.md, P1 §2.3).

Pure: takes the reader, the tag UID and the directory; no broker, no database, no clock. Whether
the reader's clock was believed is decided before (core.device_clock) and travels with the
decision, so every answer to the tap says the same about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.contract import Reason
from core.device_clock import observed_at
from core.directory import DeviceEntry, Directory, Named
from core.i18n import reason_message
from core.outbound import Name, ReaderAnswer, SignInEvent


@dataclass(frozen=True, slots=True)
class TapDecision:
    """The effect of a tap: what the sign-in row stores and every later answer is rebuilt from."""

    ok: bool
    reason: str | None
    guard_id: int | None
    location_id: int | None
    clock_skew_s: int | None = None  # the reader's clock was off by this much (stored with the message)
    round_id: int | None = None  # the round it was judged against (a site with patrol plans)
    result: str | None = None  # early / on_time / late for an ok tap of a round
    next_location_id: int | None = None  # the round's next checkpoint, told to the reader

    def _names(self, directory: Directory) -> tuple[Named | None, Named | None]:
        """(checkpoint, guard) as the directory names them now."""
        place = directory.locations.get(self.location_id) if self.location_id else None
        guard = directory.staff.get(self.guard_id) if self.guard_id else None
        return place, guard

    def _next(self, directory: Directory) -> Named | None:
        return directory.locations.get(self.next_location_id) if self.next_location_id else None

    def answer(self, msg_id: str | None, directory: Directory) -> ReaderAnswer:
        """The reader's answer, the same for the first delivery and every redelivery, because it is
        made from the stored decision, never decided again."""
        place, guard = self._names(directory)
        following = self._next(directory)
        return ReaderAnswer(
            id=msg_id,
            ok=self.ok,
            reason=self.reason,
            checkpoint=place.name_zh if place else None,
            checkpoint_en=place.name_en if place else None,
            next=following.name_zh if following else None,
            next_en=following.name_en if following else None,
            guard=guard.code if guard else None,
            message=reason_message(self.reason, clock_off=self.clock_skew_s is not None),
            clock_skew_s=self.clock_skew_s,
        )

    def event(
        self, device: str, tag_uid: str, device_ts: datetime, received_at: datetime, directory: Directory
    ) -> SignInEvent:
        """The sign-in for screens; it counts at the reader's time, or at the receipt time when the
        reader's clock was off."""
        place, guard = self._names(directory)
        return SignInEvent(
            device=device,
            guard=guard.code if guard else None,
            guard_name=Name(zh=guard.name_zh, en=guard.name_en) if guard else None,
            checkpoint=place.code if place else None,
            checkpoint_name=Name(zh=place.name_zh, en=place.name_en) if place else None,
            tag_uid=tag_uid,
            ok=self.ok,
            reason=self.reason,
            tapped_at=observed_at(device_ts, received_at, self.clock_skew_s),
            received_at=received_at,
            device_ts=device_ts,
            clock_skew_s=self.clock_skew_s,
            round_id=self.round_id,
            result=self.result,
            next_checkpoint=following.code if (following := self._next(directory)) else None,
        )


def decide_tap(reader: DeviceEntry, uid: str, directory: Directory) -> TapDecision:
    """A handheld reader (巡更棒) reads checkpoint tags and is held by a guard for the shift;
    a reader fixed at a checkpoint reads guards' badges."""
    tag = directory.tag(reader.site_id, uid)
    if reader.kind == "handheld_reader":
        if tag is None or tag.location_id is None:
            return TapDecision(False, Reason.UNKNOWN_TAG.value, reader.holder_id, None)
        return TapDecision(True, None, reader.holder_id, tag.location_id)
    if tag is None or tag.staff_id is None:
        return TapDecision(False, Reason.UNKNOWN_TAG.value, None, reader.location_id)
    return TapDecision(True, None, tag.staff_id, reader.location_id)


def refusal(msg_id: str | None, reason: str) -> ReaderAnswer:
    """The answer to a tap that was itself refused (quarantined): no checkpoint, just why."""
    return ReaderAnswer(id=msg_id, ok=False, reason=reason, message=reason_message(reason))
