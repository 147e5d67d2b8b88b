"""Incidents: sensors' rule state, alarms, emergency tickets with their steps and events, and the
notification outbox (issue 7; DOMAIN.md P5, P0 §5).

What must hold by the database, not by luck (DESIGN.md, "Effects are decided after the insert"):
at most one active alarm per (device, alarm type) and at most one open ticket per source, each a
unique partial index that a second gateway's insert runs into.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigId, UTCDateTime

ALARM_ACTIVE = text("cleared_at IS NULL")
TICKET_OPEN = text("closed_at IS NULL")


class SensorLatest(Base):
    """A sensor's newest reading, whichever store keeps the history (SQL or InfluxDB): what the
    API's "latest value" and the control room's tiles read without scanning history."""

    __tablename__ = "sensor_latest"
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    msg_id: Mapped[str] = mapped_column(String(128))


class RuleState(Base):
    """A rule's memory for one (device, alarm type): pending durations, counts, hysteresis and
    flapping (core.alarm_rules state as JSON). Kept here, locked per row while a reading is
    judged, so a restart or a second gateway continues where the last one stopped."""

    __tablename__ = "rule_states"
    __table_args__ = (UniqueConstraint("device_id", "alarm_type"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    alarm_type: Mapped[str] = mapped_column(String(32))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Alarm(Base):
    """One alarm's life: raised, repeated (count, last value, peak severity), acknowledged,
    cleared. Cleared alarms stay as history; a new condition opens a new row."""

    __tablename__ = "alarms"
    __table_args__ = (
        Index(
            "uq_alarms_active_device_type",
            "device_id",
            "alarm_type",
            unique=True,
            sqlite_where=ALARM_ACTIVE,
            postgresql_where=ALARM_ACTIVE,
        ),
        Index("ix_alarms_site_opened", "site_id", "opened_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    alarm_type: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))  # now: core.alarm_rules severity
    peak_severity: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # "rule", "event" (the device said so), "status"
    code: Mapped[str | None] = mapped_column(String(64))  # the device's own fault code, if it sent one
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"))
    floor: Mapped[int | None] = mapped_column(Integer)  # floor number, for roll-ups
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(Integer, default=1)  # readings or events that repeated it
    last_value: Mapped[dict[str, Any]] = mapped_column(JSON)
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    ack_comment: Mapped[str | None] = mapped_column(Text)
    ticket_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tickets.id"), index=True)


class AlarmSnooze(Base):
    """A supervisor's bounded silence for one device's alarms, with the reason: alarms are still
    recorded, but open no ticket and notify nobody until `until`."""

    __tablename__ = "alarm_snoozes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Ticket(Base):
    """An emergency (or maintenance) ticket carrying its procedure's steps (DOMAIN.md P5)."""

    __tablename__ = "tickets"
    __table_args__ = (
        # later alarms of the same source attach to the open ticket: one open ticket per source
        Index(
            "uq_tickets_open_source",
            "source_key",
            unique=True,
            sqlite_where=TICKET_OPEN,
            postgresql_where=TICKET_OPEN,
        ),
        Index("ix_tickets_site_state", "site_id", "state"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    procedure: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "emergency" or "maintenance"
    title_zh: Mapped[str] = mapped_column(String(300))
    title_en: Mapped[str] = mapped_column(String(300))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # core.tickets: open, acknowledged, closed
    source_key: Mapped[str | None] = mapped_column(String(128))  # "device:{id}:{procedure}"; null by hand
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"))
    floor: Mapped[int | None] = mapped_column(Integer)
    departments: Mapped[list[str]] = mapped_column(JSON)
    first_responder: Mapped[str | None] = mapped_column(String(64))  # staff code
    deadlines: Mapped[dict[str, Any]] = mapped_column(JSON)  # name → ISO due time (ack_by, on_site_by, …)
    escalation_level: Mapped[str | None] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    opened_by: Mapped[str] = mapped_column(String(64))  # a user, or "system"
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    alarm_cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(64))
    record: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # P0 §5: what happened, cause, prevention


class TicketStep(Base):
    __tablename__ = "ticket_steps"
    __table_args__ = (UniqueConstraint("ticket_id", "position"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    text_zh: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)
    safety_critical: Mapped[bool] = mapped_column(Boolean)
    department: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))  # pending, done, not_applicable
    done_by: Mapped[str | None] = mapped_column(String(64))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    safety_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)


class TicketEvent(Base):
    """Every change of a ticket: who, when, what (the audit trail)."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket", "ticket_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class OutboxMessage(Base):
    """A notification for one webhook target, written in the transaction of the change it tells
    about and delivered afterwards by the webhook worker, so a slow or dead receiver never holds
    up ingestion and a crash loses nothing."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    target: Mapped[str] = mapped_column(String(64))
    site_code: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(BigId)  # order is kept per ticket
    notice: Mapped[dict[str, Any]] = mapped_column(JSON)  # core.webhooks.Notice as JSON
    state: Mapped[str] = mapped_column(String(16))  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
