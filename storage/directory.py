"""Building the in-memory `Directory` from the database."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.directory import DeviceEntry, Directory, Named, TagEntry
from storage.models import Device, Location, Site, Staff, Tag


def load_directory(session: Session) -> Directory:
    sites = {s.id: s.code for s in session.scalars(select(Site))}
    devices = {
        (sites[d.site_id], d.code): DeviceEntry(
            id=d.id,
            site_id=d.site_id,
            site_code=sites[d.site_id],
            code=d.code,
            kind=d.kind,
            location_id=d.location_id,
            holder_id=d.holder_id,
        )
        for d in session.scalars(select(Device).where(Device.active.is_(True)))
    }
    tags = {
        (t.site_id, t.uid.upper()): TagEntry(uid=t.uid.upper(), location_id=t.location_id, staff_id=t.staff_id)
        for t in session.scalars(select(Tag).where(Tag.active.is_(True)))
    }
    locations = {loc.id: Named(loc.id, loc.code, loc.name_zh, loc.name_en) for loc in session.scalars(select(Location))}
    staff = {s.id: Named(s.id, s.code, s.name_zh, s.name_en) for s in session.scalars(select(Staff))}
    return Directory(devices=devices, tags=tags, locations=locations, staff=staff)
