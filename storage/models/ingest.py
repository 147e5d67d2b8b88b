"""What came in over MQTT: the idempotent message log, sign-ins and quarantined input."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigId, UTCDateTime


class InboundMessage(Base):
    """One accepted device message; the unique (device, msg_id) makes redelivery harmless."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("device_id", "msg_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    msg_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    device_ts: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[str] = mapped_column(Text)  # the JSON exactly as the device sent it
    # device ts − receipt time (s) when `device_ts` lay outside the clock window and receipt time
    # was used instead (core.device_clock); null when the device's clock was believed
    clock_skew_s: Mapped[int | None] = mapped_column(Integer)


class SignIn(Base):
    """A guard's tap at a checkpoint (签到), with the verdict the reader was given: the stored effect
    that a redelivered tap's answer is rebuilt from."""

    __tablename__ = "signins"
    __table_args__ = (
        Index("ix_signins_site_tapped", "site_id", "tapped_at"),
        Index("ix_signins_guard_tapped", "guard_id", "tapped_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("inbound_messages.id"), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    guard_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"), index=True)
    tag_uid: Mapped[str] = mapped_column(String(20))
    tapped_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ok: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(32))
    # the round the tap was judged against (issue 8); null on a site without plans or with no round
    round_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("rounds.id"), index=True)
    result: Mapped[str | None] = mapped_column(String(16))  # early / on_time / late, for an ok tap of a round
    next_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))  # told to the reader


class QuarantinedMessage(Base):
    """Input the gateway refused, so an operator can see why: a bounded prefix of the payload with
    its full size and SHA-256, and repeats of the same rejection folded into one row with a count."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # SHA-256 of topic, reason and the payload's digest: repeats fold into this row (and a
    # redelivered rejection finds it); rows kept before revision 0004 have another key
    dedup_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)  # first seen
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    count: Mapped[int] = mapped_column(Integer, default=1)  # deliveries folded into this row
    topic: Mapped[str] = mapped_column(Text)  # the first 1,024 characters
    site_code: Mapped[str | None] = mapped_column(String(64))
    device_code: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(160))  # its budget bucket (QuarantineBudget.bucket)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # a prefix (storage.quarantine.KEEP_BYTES)
    size: Mapped[int] = mapped_column(Integer, default=0)  # of the whole payload, in bytes
    sha256: Mapped[str | None] = mapped_column(String(64))  # of the whole payload


class QuarantineBudget(Base):
    """Rejections of one source in one hour: rows it may still add to the quarantine, and how many
    were only counted once it was over budget (the control room sees the source flagged)."""

    __tablename__ = "quarantine_budgets"
    __table_args__ = (UniqueConstraint("bucket", "window_start"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # "device:{site}/{device}" for a registered device, "site:{site}" for unknown devices of a
    # registered site, "other" for everything else (unknown sites, topics outside the contract)
    bucket: Mapped[str] = mapped_column(String(160))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    site_code: Mapped[str | None] = mapped_column(String(64))
    device_code: Mapped[str | None] = mapped_column(String(64))
    stored: Mapped[int] = mapped_column(Integer, default=0)  # new quarantine rows this hour
    over: Mapped[int] = mapped_column(Integer, default=0)  # rejections counted but not kept
    last_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
