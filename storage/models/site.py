"""The site model: site → building → floor, locations (checkpoints), tags, staff and devices."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, UTCDateTime


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # the site file's `alarm_rules:` and `roster:` sections as validated JSON (core.alarm_rules,
    # core.escalation): read with the directory, so the gateway judges readings without a query
    alarm_rules: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    roster: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # the site file's `routes:` and `plans:` (core.patrol_plans), validated; no plans: taps are
    # judged by the tag alone (a site can be onboarded before its plans are written)
    routes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    plans: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    buildings: Mapped[list[Building]] = relationship(back_populates="site", order_by="Building.code")


class _SiteThing:
    """A thing of one site, known by a code unique in the site and a bilingual name."""

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))


class Department(_SiteThing, Base):
    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("site_id", "code"),)


class Building(_SiteThing, Base):
    __tablename__ = "buildings"
    __table_args__ = (UniqueConstraint("site_id", "code"),)
    floors_above: Mapped[int] = mapped_column(Integer)
    floors_below: Mapped[int] = mapped_column(Integer, default=0)

    site: Mapped[Site] = relationship(back_populates="buildings")
    floors: Mapped[list[Floor]] = relationship(back_populates="building", order_by="Floor.number")


class Floor(Base):
    __tablename__ = "floors"
    __table_args__ = (UniqueConstraint("building_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1 = ground floor, -1 = first basement (B1)
    label: Mapped[str] = mapped_column(String(16))

    building: Mapped[Building] = relationship(back_populates="floors")


class Location(_SiteThing, Base):
    """A place on the site; a location with an NFC tag is a patrol checkpoint."""

    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("site_id", "code"),)
    type: Mapped[str] = mapped_column(String(32))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"), index=True)
    floor_id: Mapped[int | None] = mapped_column(ForeignKey("floors.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Staff(_SiteThing, Base):
    """Anyone who works on the site: guards, front desk, technicians, managers."""

    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("site_id", "code"),)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    position: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Tag(Base):
    """An NFC tag: either fixed at a checkpoint or a guard's badge (never both)."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("site_id", "uid"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    uid: Mapped[str] = mapped_column(String(20))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Device(_SiteThing, Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("site_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    online: Mapped[bool | None] = mapped_column(Boolean)
    battery_pct: Mapped[int | None] = mapped_column(Integer)
    rssi: Mapped[int | None] = mapped_column(Integer)
    firmware: Mapped[str | None] = mapped_column(String(64))
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
