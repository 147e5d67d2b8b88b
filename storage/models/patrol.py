"""Patrol: rounds (巡查任务) with their points (巡查明细), hand-overs (转交) and findings
(公共区域现场巡视表) (issue 8; DOMAIN.md P0, P1 §2.3–§2.10).

Routes and plans are the site's configuration and live on the site row as validated JSON (like its
alarm rules and roster). A round is generated at most once per (plan, planned guard, start): a unique
key a second gateway's insert runs into. A point is decided missed once: `missed_alerted_at` is set
in the transaction that tells the control room.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigId, UTCDateTime


class Round(Base):
    """One guard's round of one plan. `guard_id` is who walks it now (after a hand-over);
    `planned_guard_id` keeps generation idempotent whoever holds it."""

    __tablename__ = "rounds"
    __table_args__ = (
        UniqueConstraint("site_id", "plan", "planned_guard_id", "starts_at"),
        Index("ix_rounds_guard_starts", "guard_id", "starts_at"),
        Index("ix_rounds_site_starts", "site_id", "starts_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    plan: Mapped[str] = mapped_column(String(64))
    route: Mapped[str] = mapped_column(String(64))
    area: Mapped[str] = mapped_column(String(64))
    planned_guard_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    guard_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    grace_s: Mapped[int] = mapped_column(Integer)
    makeup: Mapped[bool] = mapped_column(Boolean)
    early_finish: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16), index=True)  # core.rounds.RoundState
    completion_pct: Mapped[float] = mapped_column(default=0.0)
    lateness_s: Mapped[int] = mapped_column(Integer, default=0)
    last_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_point: Mapped[str | None] = mapped_column(String(64))
    # the latest tap time judged against the round, refused ones too: an earlier tap arriving
    # after it replays the round in tap-time order (storage.round_taps)
    last_tap_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # finished early by the guard (plans with `early_finish: true`), with the reason given
    finish_reason: Mapped[str | None] = mapped_column(Text)
    # a round that ended with a missed point raises an alert a supervisor closes with a comment
    alert_open: Mapped[bool] = mapped_column(Boolean, default=False)
    alert_closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    alert_closed_by: Mapped[str | None] = mapped_column(String(64))
    alert_comment: Mapped[str | None] = mapped_column(Text)


class RoundPoint(Base):
    """A checkpoint of a round and its result: early, on time, late, missed (core.rounds.Point)."""

    __tablename__ = "round_points"
    __table_args__ = (UniqueConstraint("round_id", "checkpoint"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    round_id: Mapped[int] = mapped_column(BigId, ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # walking order of the route
    checkpoint: Mapped[str] = mapped_column(String(64))  # the location's code
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    order: Mapped[int] = mapped_column(Integer)  # 0 any order, 1..n fixed
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime())
    min_gap_s: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str] = mapped_column(String(16), default="pending")  # core.rounds.PointResult
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    condition: Mapped[str | None] = mapped_column(String(16))
    missed_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RoundHandover(Base):
    """A round handed to another guard (转交), with who did it and why."""

    __tablename__ = "round_handovers"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    round_id: Mapped[int] = mapped_column(BigId, ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    from_guard_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    to_guard_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    reason: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Finding(Base):
    """Something a guard found at a checkpoint (公共区域现场巡视表), with photos, and the ticket it opened."""

    __tablename__ = "findings"
    __table_args__ = (Index("ix_findings_site_created", "site_id", "created_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    round_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("rounds.id"))
    category: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    # [{"key": storage key, "type": "image/jpeg", "size": bytes, "sha256": hex}]
    photos: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reported_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ticket_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tickets.id"))
