"""Findings (issue 8 item 7, 公共区域现场巡视表): a guard reports what they found at a checkpoint, with photos,
and it opens (or joins) a ticket for the department that acts, with DOMAIN.md's deadline (docs/findings.md).

- report: `POST /api/v1/findings`, multipart/form-data (site, location, category, note, round_id, 0–6
  photos); the rules are storage.findings'. Roles: guard, control_room, supervisor, manager, admin.
- read: the list, one finding, a photo's bytes, the categories. Roles: all (an engineer sent to repair
  a facility needs its photos).

A refused photo is 413 (too large) or 415 (not JPEG, PNG, WebP or HEIC), an unknown site, location or
round 404, anything else refused 422 in FastAPI's validation format; each message in English and Chinese
says what to do. Nothing is stored then. The photo store failing is 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Request, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator, Field
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from core.findings import (
    ACCEPTED_TYPES,
    CATEGORIES,
    MAX_NOTE_CHARS,
    MAX_PHOTOS,
    FindingRefused,
    check_photo_count,
    too_large,
)
from core.outbound import Name
from server.api.deps import EVERYONE, BeforeId, Limit, SessionDep, require_roles
from server.api.finding_schemas import CategoryCode, CategoryPublic, FindingPublic, FindingReportPublic, PhotoPublic
from server.api.incident_schemas import NO_NUL, CodeFilter
from server.api.routes.tickets import EnvDep, Now
from server.api.schemas import Page
from server.api.time_filters import Since, Until, resolve_bound, site_zone
from server.auth import Role
from storage import findings as flow
from storage.incident_notes import Told, publish_later
from storage.media import PhotoMissing, PhotoStore, PhotoStoreError, open_photo_store
from storage.models import Building, Finding, Location, Site, User

log = logging.getLogger(__name__)
R = Role
router = APIRouter(prefix="/api/v1/findings", tags=["findings"])
Reporter = Annotated[User, Depends(require_roles(R.GUARD, R.CONTROL_ROOM, R.SUPERVISOR, R.MANAGER))]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
REPORT = "Roles: guard, control_room, supervisor, manager, admin"
READ = "Roles: all"
STORE_503: dict[str, Any] = {"description": "The photo store (disk or S3) failed: try again later"}


def photo_store(request: Request) -> PhotoStore:
    """The app's photo store, opened from its settings on first use (storage.media.open_photo_store)."""
    store: PhotoStore | None = getattr(request.app.state, "photo_store", None)
    if store is None:
        store = request.app.state.photo_store = open_photo_store(request.app.state.settings)
    return store


StoreDep = Annotated[PhotoStore, Depends(photo_store)]


def _blank_is_none(value: object) -> object:
    """A form has no null: an empty field (a browser's) or the text `null` (the OpenAPI's null) is none."""
    return None if value in ("", "null") else value


#: An optional id in a form, where null can only be sent as text. Bounded to 2**53 - 1, which JSON numbers
#: (and the tools that write forms from an OpenAPI) carry exactly; ids are far below it.
OptionalRowId = Annotated[Annotated[int, Field(ge=1, le=2**53 - 1)] | None, BeforeValidator(_blank_is_none)]


def _refusal(exc: FindingRefused) -> HTTPException | RequestValidationError:
    text = f"{exc.message.en} ({exc.message.zh})"
    if exc.status != status.HTTP_422_UNPROCESSABLE_CONTENT:
        return HTTPException(exc.status, text)
    loc = ("body", exc.field) if exc.photo is None else ("body", exc.field, exc.photo - 1)
    return RequestValidationError([{"type": exc.code, "loc": loc, "msg": text, "input": None}])


def _public(session: Session, where: list[ColumnElement[bool]], limit: int | None = None) -> list[FindingPublic]:
    stmt = (
        select(Finding, Site.code, Location, Building.code)
        .join(Site, Site.id == Finding.site_id)
        .outerjoin(Location, Location.id == Finding.location_id)
        .outerjoin(Building, Building.id == Location.building_id)
        .where(*where)
        .order_by(Finding.id.desc())
    )
    rows = session.execute(stmt if limit is None else stmt.limit(limit)).all()
    out = []
    for f, site, loc, building in rows:
        kind = CATEGORIES.get(f.category)
        photos = [
            PhotoPublic(
                number=i,
                type=p["type"],
                size=p["size"],
                sha256=p["sha256"],
                url=f"{router.prefix}/{f.id}/photos/{i}",
            )
            for i, p in enumerate(f.photos or [], start=1)
        ]
        out.append(
            FindingPublic(
                id=f.id,
                site=site,
                location=loc.code if loc else None,
                location_name=Name(zh=loc.name_zh, en=loc.name_en) if loc else None,
                building=building,
                round_id=f.round_id,
                category=f.category,
                category_name=kind.name if kind else Name(zh=f.category, en=f.category),
                source=kind.source if kind else "",
                note=f.note,
                photos=photos,
                reported_by=f.reported_by,
                created_at=f.created_at,
                ticket_id=f.ticket_id,
            )
        )
    return out


def _read_photos(uploads: list[UploadFile], max_bytes: int) -> list[bytes]:
    """The uploaded photos' bytes, each read to at most one byte past the limit (a larger one is refused
    without being held in memory whole). A part with no file chosen (a browser form) is skipped."""
    files = [u for u in uploads if u.filename or u.size]
    check_photo_count(len(files))
    out = []
    for i, upload in enumerate(files, start=1):
        data = upload.file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise too_large(i, max_bytes)
        out.append(data)
    return out


@router.post(
    "",
    response_model=FindingReportPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"description": "No such site, location or round (GET /api/v1/sites lists them)"},
        415: {"description": "A photo is not a JPEG, PNG, WebP or HEIC image (read from its bytes)"},
        503: STORE_503,
    },
    summary=f"Report a finding at a checkpoint, with up to {MAX_PHOTOS} photos; opens or joins its ticket. {REPORT}",
)
def report_finding(
    request: Request,
    session: SessionDep,
    user: Reporter,
    env: EnvDep,
    at: Now,
    store: StoreDep,
    site: Annotated[str, Form(min_length=1, max_length=64, pattern=NO_NUL, description="the site's code")],
    location: Annotated[
        str, Form(min_length=1, max_length=64, pattern=NO_NUL, description="the checkpoint's (location's) code")
    ],
    category: Annotated[CategoryCode, Form(description="what was found (GET /api/v1/findings/categories)")],
    photos: Annotated[
        list[UploadFile],
        File(
            default_factory=list,
            max_length=MAX_PHOTOS,
            description=f"0 to {MAX_PHOTOS} photos: JPEG, PNG, WebP or HEIC, each within PATROL_PHOTO_MAX_BYTES",
        ),
    ],
    note: Annotated[str, Form(max_length=MAX_NOTE_CHARS, pattern=r"^[^\x00]*$")] = "",
    round_id: Annotated[OptionalRowId, Form(description="the patrol round being walked; empty or null: none")] = None,
) -> FindingReportPublic:
    max_bytes: int = request.app.state.settings.photo_max_bytes
    told = Told()
    try:
        report = flow.FindingReport(
            site, location, category, note, _read_photos(photos, max_bytes), user.username, round_id
        )
        reported = flow.report_finding(
            session,
            env,
            told,
            store,
            report,
            at,
            photo_max_bytes=max_bytes,
        )
    except FindingRefused as exc:
        raise _refusal(exc) from None
    except PhotoStoreError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{exc}: try again later") from None
    finding_id, attached = reported.finding.id, reported.attached
    publish_later(session, told, at)
    session.commit()
    [public] = _public(session, [Finding.id == finding_id])
    return FindingReportPublic(**public.model_dump(), attached=attached)


@router.get("", response_model=Page[FindingPublic], dependencies=[EVERYONE], summary=f"Findings, newest first. {READ}")
def list_findings(
    session: SessionDep,
    site: CodeFilter = None,
    category: CategoryCode | None = None,
    location: CodeFilter = None,
    since: Since = None,
    until: Until = None,
    before_id: BeforeId = None,
    limit: Limit = 100,
) -> Page[FindingPublic]:
    """`since`/`until` bound the time the finding was reported."""
    zone = site_zone(session, site) if since is not None or until is not None else UTC
    filters: list[tuple[object, Callable[[Any], ColumnElement[bool]]]] = [
        (site, lambda v: Site.code == v),
        (category, lambda v: Finding.category == v),
        (location, lambda v: Location.code == v),
        (since, lambda v: Finding.created_at >= resolve_bound(v, zone, end_of_day=False)),
        (until, lambda v: Finding.created_at < resolve_bound(v, zone, end_of_day=True)),
        (before_id, lambda v: Finding.id < v),
    ]
    where = [clause(value) for value, clause in filters if value is not None]
    return Page[FindingPublic].of(_public(session, where, limit), limit)


@router.get(
    "/categories",
    response_model=list[CategoryPublic],
    dependencies=[EVERYONE],
    summary=f"The categories a finding may have, with the rule and the department. {READ}",
)
def list_categories() -> list[CategoryPublic]:
    return [
        CategoryPublic(code=c.code, name=c.name, source=c.source, department=c.department, procedure=c.procedure)
        for c in CATEGORIES.values()
    ]


@router.get("/{finding_id}", response_model=FindingPublic, dependencies=[EVERYONE], summary=f"One finding. {READ}")
def get_finding(session: SessionDep, finding_id: RowId) -> FindingPublic:
    found = _public(session, [Finding.id == finding_id])
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no finding {finding_id}: list them at GET {router.prefix}")
    return found[0]


@router.get(
    "/{finding_id}/photos/{number}",
    response_class=Response,
    dependencies=[EVERYONE],
    responses={
        200: {
            "description": "The photo's bytes as uploaded",
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ACCEPTED_TYPES},
        },
        503: STORE_503,
    },
    summary=f"A finding's photo (numbered from 1), byte for byte, with its content type. {READ}",
)
def get_photo(
    session: SessionDep, store: StoreDep, finding_id: RowId, number: Annotated[int, Path(ge=1, le=MAX_PHOTOS)]
) -> Response:
    try:
        found = flow.photo_of(session, store, finding_id, number)
    except PhotoMissing:
        log.error("finding %s names photo %s, which the photo store does not have", finding_id, number)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"photo {number} of finding {finding_id} is recorded but missing from the photo store "
            "(was PATROL_MEDIA_DIR or the bucket changed?)",
        ) from None
    except PhotoStoreError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{exc}: try again later") from None
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"finding {finding_id} has no photo {number}: GET {router.prefix}/{finding_id}"
        )
    data, media_type = found
    return Response(content=data, media_type=media_type)
