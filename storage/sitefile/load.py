"""Writing a parsed site file into the database: idempotent upserts keyed by code.

Loading the same file twice changes nothing; a changed file updates what changed; something
removed from the file is deactivated, not deleted, because sign-ins and tickets still point at it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import deadlines
from storage.models import Building, Department, Device, Floor, Location, Site, Staff, Tag, utcnow
from storage.rounds import GENERATE, site_subject
from storage.sitefile.schema import SiteFile


@dataclass
class LoadSummary:
    site: str
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    deactivated: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deactivated)

    def describe(self) -> str:
        if not self.changed:
            return f"site {self.site}: already up to date, nothing changed"
        parts = [
            f"{what} {dict(c)}"
            for what, c in (("created", self.created), ("updated", self.updated), ("deactivated", self.deactivated))
            if c
        ]
        return f"site {self.site}: " + "; ".join(parts)


def _sync(session: Session, summary: LoadSummary, label: str, obj: Any, values: dict[str, Any]) -> None:
    changed = {k: v for k, v in values.items() if getattr(obj, k) != v}
    for k, v in changed.items():
        setattr(obj, k, v)
    if changed and obj.id is not None:
        summary.updated[label] += 1


def _upsert(
    session: Session,
    summary: LoadSummary,
    label: str,
    model: Any,
    existing: dict[Any, Any],
    key: Any,
    values: dict[str, Any],
) -> Any:
    obj = existing.get(key)
    if obj is None:
        obj = model(**values)
        session.add(obj)
        summary.created[label] += 1
        existing[key] = obj
    else:
        _sync(session, summary, label, obj, values)
    return obj


def _deactivate(summary: LoadSummary, label: str, rows: dict[Any, Any], keep: set[Any]) -> None:
    for key, obj in rows.items():
        if key not in keep and obj.active:
            obj.active = False
            summary.deactivated[label] += 1


def load_site(session: Session, spec: SiteFile, now: datetime | None = None) -> LoadSummary:
    """Write the site file; `now` (default: the wall clock) is when its rounds start being generated."""
    summary = LoadSummary(site=spec.site.code)
    s = spec.site
    site = session.scalar(select(Site).where(Site.code == s.code))
    site_values = {
        "code": s.code,
        "name_zh": s.name.zh,
        "name_en": s.name.en,
        "timezone": s.timezone,
        "alarm_rules": spec.alarm_rules.model_dump(mode="json", exclude_unset=True),
        "roster": spec.roster.model_dump(mode="json", by_alias=True),
        "routes": [r.model_dump(mode="json", exclude_none=True) for r in spec.routes],
        "plans": [p.model_dump(mode="json", exclude_none=True) for p in spec.plans],
    }
    site = _upsert(session, summary, "site", Site, {s.code: site} if site else {}, s.code, site_values)
    session.flush()
    sid = site.id

    def rows(model: Any, key: str = "code") -> dict[Any, Any]:
        return {getattr(r, key): r for r in session.scalars(select(model).where(model.site_id == sid))}

    departments = rows(Department)
    for d in spec.departments:
        _upsert(
            session,
            summary,
            "department",
            Department,
            departments,
            d.code,
            {"site_id": sid, "code": d.code, "name_zh": d.name.zh, "name_en": d.name.en},
        )
    buildings = rows(Building)
    for b in spec.buildings:
        _upsert(
            session,
            summary,
            "building",
            Building,
            buildings,
            b.code,
            {
                "site_id": sid,
                "code": b.code,
                "name_zh": b.name.zh,
                "name_en": b.name.en,
                "floors_above": b.floors_above,
                "floors_below": b.floors_below,
            },
        )
    session.flush()
    floors = _sync_floors(session, summary, spec, buildings)
    locations = rows(Location)
    for loc in spec.locations:
        building = buildings[loc.building] if loc.building else None
        floor = floors[(building.id, loc.floor)] if building and loc.floor is not None else None
        _upsert(
            session,
            summary,
            "location",
            Location,
            locations,
            loc.code,
            {
                "site_id": sid,
                "code": loc.code,
                "name_zh": loc.name.zh,
                "name_en": loc.name.en,
                "type": loc.type,
                "building_id": building.id if building else None,
                "floor_id": floor.id if floor else None,
                "active": True,
            },
        )
    _deactivate(summary, "location", locations, {loc.code for loc in spec.locations})
    staff = rows(Staff)
    for p in spec.staff:
        _upsert(
            session,
            summary,
            "staff",
            Staff,
            staff,
            p.code,
            {
                "site_id": sid,
                "code": p.code,
                "name_zh": p.name.zh,
                "name_en": p.name.en,
                "department_id": departments[p.department].id,
                "position": p.position,
                "phone": p.phone,
                "active": True,
            },
        )
    _deactivate(summary, "staff", staff, {p.code for p in spec.staff})
    session.flush()
    _sync_tags(session, summary, spec, sid, locations, staff)
    devices = rows(Device)
    for dev in spec.devices:
        _upsert(
            session,
            summary,
            "device",
            Device,
            devices,
            dev.code,
            {
                "site_id": sid,
                "code": dev.code,
                "kind": dev.kind,
                "name_zh": dev.name.zh,
                "name_en": dev.name.en,
                "holder_id": staff[dev.holder].id if dev.holder else None,
                "location_id": locations[dev.location].id if dev.location else None,
                "active": True,
            },
        )
    _deactivate(summary, "device", devices, {d.code for d in spec.devices})
    session.flush()
    if spec.plans:  # the gateway's sweeper generates the rounds ahead, now and every hour
        now = now or utcnow()
        deadlines.schedule(session, GENERATE, site_subject(sid), now, {"site_id": sid}, now)
    return summary


def _sync_floors(
    session: Session, summary: LoadSummary, spec: SiteFile, buildings: dict[str, Building]
) -> dict[tuple[int, int], Floor]:
    ids = [b.id for b in buildings.values()]
    floors = {(f.building_id, f.number): f for f in session.scalars(select(Floor).where(Floor.building_id.in_(ids)))}
    for b in spec.buildings:
        building = buildings[b.code]
        for n in [*range(-b.floors_below, 0), *range(1, b.floors_above + 1)]:
            label = f"B{-n}" if n < 0 else f"{n}F"
            _upsert(
                session,
                summary,
                "floor",
                Floor,
                floors,
                (building.id, n),
                {"building_id": building.id, "number": n, "label": label},
            )
    session.flush()
    return floors


def _sync_tags(
    session: Session,
    summary: LoadSummary,
    spec: SiteFile,
    sid: int,
    locations: dict[str, Location],
    staff: dict[str, Staff],
) -> None:
    tags = {t.uid: t for t in session.scalars(select(Tag).where(Tag.site_id == sid))}
    wanted: dict[str, dict[str, Any]] = {}
    for loc in spec.locations:
        if loc.tag:
            wanted[loc.tag] = {"location_id": locations[loc.code].id, "staff_id": None}
    for p in spec.staff:
        if p.badge:
            wanted[p.badge] = {"location_id": None, "staff_id": staff[p.code].id}
    for uid, owner in wanted.items():
        _upsert(session, summary, "tag", Tag, tags, uid, {"site_id": sid, "uid": uid, **owner, "active": True})
    _deactivate(summary, "tag", tags, set(wanted))
