"""What came in over MQTT: the idempotent message log, sign-ins and quarantined input."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
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


class QuarantinedMessage(Base):
    """Input the gateway refused, kept byte for byte so an operator can see why."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # SHA-256 of topic and payload: a redelivered rejection is the same message, kept once
    dedup_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    topic: Mapped[str] = mapped_column(Text)
    site_code: Mapped[str | None] = mapped_column(String(64))
    device_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
