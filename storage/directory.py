"""Building the in-memory `Directory` from the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.directory import DeviceEntry, Directory, Named, SiteRules, TagEntry
from storage.duty import roster_of
from storage.models import Building, Device, Floor, Location, Site, Staff, Tag


def load_directory(session: Session) -> Directory:
    site_rows = list(session.scalars(select(Site)))
    sites = {s.id: s.code for s in site_rows}
    places = {
        loc_id: (building_id, building, floor, code)
        for loc_id, code, building_id, building, floor in session.execute(
            select(Location.id, Location.code, Location.building_id, Building.code, Floor.number)
            .outerjoin(Building, Building.id == Location.building_id)
            .outerjoin(Floor, Floor.id == Location.floor_id)
        )
    }
    devices = {
        (sites[d.site_id], d.code): DeviceEntry(
            id=d.id,
            site_id=d.site_id,
            site_code=sites[d.site_id],
            code=d.code,
            kind=d.kind,
            location_id=d.location_id,
            holder_id=d.holder_id,
            **_place(places.get(d.location_id) if d.location_id is not None else None),
        )
        for d in session.scalars(select(Device).where(Device.active.is_(True)))
    }
    tags = {
        (t.site_id, t.uid.upper()): TagEntry(uid=t.uid.upper(), location_id=t.location_id, staff_id=t.staff_id)
        for t in session.scalars(select(Tag).where(Tag.active.is_(True)))
    }
    locations = {loc.id: Named(loc.id, loc.code, loc.name_zh, loc.name_en) for loc in session.scalars(select(Location))}
    staff = {s.id: Named(s.id, s.code, s.name_zh, s.name_en) for s in session.scalars(select(Staff))}
    rules = {s.id: _rules(session, s) for s in site_rows}
    return Directory(devices=devices, tags=tags, locations=locations, staff=staff, site_rules=rules)


def _place(found: tuple[int | None, str | None, int | None, str] | None) -> dict[str, Any]:
    if found is None:
        return {}
    building_id, building, floor, code = found
    return {"building_id": building_id, "building": building, "floor": floor, "location": code}


def device_entry(session: Session, device_id: int) -> tuple[DeviceEntry, SiteRules] | None:
    """One device as the directory has it, with its site's rules: for the deadline engine, which
    acts on a device without holding the gateway's directory."""
    d = session.get(Device, device_id)
    site = session.get(Site, d.site_id) if d is not None else None
    if d is None or site is None:
        return None
    place = None
    if d.location_id is not None:
        row = session.execute(
            select(Location.building_id, Building.code, Floor.number, Location.code)
            .outerjoin(Building, Building.id == Location.building_id)
            .outerjoin(Floor, Floor.id == Location.floor_id)
            .where(Location.id == d.location_id)
        ).first()
        place = (row[0], row[1], row[2], row[3]) if row is not None else None
    entry = DeviceEntry(d.id, d.site_id, site.code, d.code, d.kind, d.location_id, d.holder_id, **_place(place))
    return entry, _rules(session, site)


def _rules(session: Session, site: Site) -> SiteRules:
    shifts = tuple(roster_of(session, site.id)[0]) if site.plans else ()  # what the taps' verdicts need
    return SiteRules(site.timezone, dict(site.alarm_rules or {}), bool(site.plans), shifts)
