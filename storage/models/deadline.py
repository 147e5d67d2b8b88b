"""The `deadlines` table: timers that survive restarts (DESIGN.md, "Deadlines live in the database")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigId, UTCDateTime

PENDING_ONLY = text("state = 'pending'")


class DeadlineRow(Base):
    """One deadline and its history. Rows are kept after they fire (or are cancelled, or fail) so
    what happened stays visible; housekeeping removes old finished ones."""

    __tablename__ = "deadlines"
    __table_args__ = (
        # what the sweeper asks: pending ones, earliest first
        Index("ix_deadlines_state_due_at", "state", "due_at"),
        # at most one pending deadline per (kind, subject): "schedule" is an upsert on it, so
        # scheduling again moves the deadline instead of adding a second timer for the same thing
        Index(
            "uq_deadlines_pending_kind_subject",
            "kind",
            "subject",
            unique=True,
            sqlite_where=PENDING_ONLY,
            postgresql_where=PENDING_ONLY,
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))  # picks the handler, e.g. "alarm.ack_by"
    subject: Mapped[str] = mapped_column(String(128))  # what it is about, e.g. an alarm's id
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # core.deadlines.DeadlineState
    attempts: Mapped[int] = mapped_column(Integer)  # failed runs of its handler so far
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())  # last move, cancel, retry or fire
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
