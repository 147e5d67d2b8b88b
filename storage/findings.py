"""Recording a finding (公共区域现场巡视表, issue 8 item 7) and opening its ticket, in the caller's transaction.

One write path: `report_finding` checks everything first (category, note,
photos by core.findings; site, location and round here), so a refused finding stores nothing, not even a
photo; then it keeps the photos (storage.media), inserts the finding and opens its ticket through
storage.ticket_flow.start, whose notices and out/ events commit with the finding or not at all.

Decision: a finding **attaches** to the ticket already open (acknowledged or not, until it is closed) for
the same location and category, as alarms of one device do: two guards photographing the same broken
light make one repair job, not two. Each finding stays its own row with its own photos and points at
that ticket; every finding on a ticket, the first included, is a `finding` event of it (who, the note,
how many photos). A finding of another
category at the same place, or after the ticket was closed, opens a new ticket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import findings as rules
from core.outbound import Name
from storage import ticket_flow
from storage.alarms import Where
from storage.incident_notes import IncidentEnv, Told
from storage.media import PhotoStore
from storage.models import Finding, Floor, Location, Round, Site, Ticket
from storage.tickets import add_event


@dataclass(frozen=True)
class FindingReport:
    """What a guard reports at a checkpoint: where, what, the note and the photos' bytes."""

    site: str
    location: str
    category: str
    note: str
    photos: Sequence[bytes]
    reported_by: str
    round_id: int | None = None


@dataclass(frozen=True)
class Reported:
    """A recorded finding, the ticket it opened or joined, and whether it joined one already open."""

    finding: Finding
    ticket: Ticket
    attached: bool


def source_key(location_id: int, category: str) -> str:
    """What makes a later finding join an open ticket: the same location and category."""
    return f"finding:{location_id}:{category}"


def _unknown(code: str, field: str, zh: str, en: str) -> rules.FindingRefused:
    """A site, location or round that does not exist: 404, as for a ticket opened by hand."""
    return rules.FindingRefused(code, Name(zh=zh, en=en), status=404, field=field)


def _place(session: Session, site: str, location: str, round_id: int | None) -> tuple[Site, Location, int | None]:
    found = session.scalar(select(Site).where(Site.code == site))
    if found is None:
        raise _unknown("unknown_site", "site", f"没有小区 {site!r}", f"no site {site!r}: GET /api/v1/sites lists them")
    place = session.execute(
        select(Location, Floor.number)
        .outerjoin(Floor, Floor.id == Location.floor_id)
        .where(Location.site_id == found.id, Location.code == location)
    ).one_or_none()
    if place is None:
        raise _unknown(
            "unknown_location",
            "location",
            f"{site} 没有位置 {location!r}",
            f"no location {location!r} at {site}: GET /api/v1/sites/{site}/checkpoints?tagged_only=false lists them",
        )
    if round_id is not None and session.scalar(select(Round.site_id).where(Round.id == round_id)) != found.id:
        raise _unknown(
            "unknown_round",
            "round_id",
            f"{site} 没有巡查轮次 {round_id}",
            f"no patrol round {round_id} at {site}: leave round_id out, or take it from the round being walked",
        )
    loc, floor = place
    return found, loc, floor


def report_finding(
    session: Session,
    env: IncidentEnv,
    told: Told,
    store: PhotoStore,
    report: FindingReport,
    now: datetime,
    photo_max_bytes: int = rules.DEFAULT_PHOTO_MAX_BYTES,
) -> Reported:
    """Record a finding with its photos and open (or join) its ticket; the caller commits.

    Refused with core.findings.FindingRefused (nothing stored) for an unknown category, site, location or
    round (status 404), a note too long, more than MAX_PHOTOS photos, or a photo empty, too large or not
    JPEG, PNG, WebP or HEIC; storage.media.PhotoStoreError when the photo store fails (nothing committed)."""
    kind = rules.category(report.category)
    text = rules.check_note(report.note)
    rules.check_photo_count(len(report.photos))
    found, loc, floor = _place(session, report.site, report.location, report.round_id)
    checked = [rules.check_photo(data, i, photo_max_bytes) for i, data in enumerate(report.photos, start=1)]
    procedure = ticket_flow.procedure_of(env, kind.procedure)
    stored = [{"key": store.put(p.data, p.type), "type": p.type, "size": p.size, "sha256": p.sha256} for p in checked]
    finding = Finding(
        site_id=found.id,
        location_id=loc.id,
        round_id=report.round_id,
        category=kind.code,
        note=text,
        photos=stored,
        reported_by=report.reported_by,
        created_at=now,
    )
    session.add(finding)
    session.flush()
    detail = {"finding_id": finding.id, "category": kind.code, "photos": len(stored)}
    ticket, created = ticket_flow.start(
        session,
        env,
        told,
        site_id=found.id,
        procedure=procedure,
        severity=procedure.severity,
        now=now,
        by=report.reported_by,
        source=source_key(loc.id, kind.code),
        where=Where(loc.id, loc.building_id, floor),
        detail=detail,
    )
    # every finding on the ticket, the first included, is a `finding` event: who, the note, how many photos
    add_event(session, ticket.id, now, report.reported_by, "finding", detail | {"note": text})
    finding.ticket_id = ticket.id
    return Reported(finding, ticket, attached=not created)


def photo_of(session: Session, store: PhotoStore, finding_id: int, number: int) -> tuple[bytes, str] | None:
    """Photo `number` (from 1) of a finding, with its content type; None if there is no such finding or photo.
    storage.media.PhotoMissing if the row names a photo the store lost."""
    photos = session.scalar(select(Finding.photos).where(Finding.id == finding_id))
    if photos is None or not 1 <= number <= len(photos):
        return None
    entry = photos[number - 1]
    return store.get(str(entry["key"])), str(entry["type"])
