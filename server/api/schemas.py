"""What the API returns; one `…Public` model per resource."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.outbound import Name, SignInEvent


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorPublic(BaseModel):
    """Every error answer but 422 (FastAPI's validation list): what went wrong and what to do next."""

    detail: str


class TokenRequest(BaseModel):
    # bounded: a login must not make the server hash megabytes or track megabyte-long keys
    # no NUL: PostgreSQL text cannot hold one, and the name is looked up there (a 500 before)
    username: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00]+$")
    password: str = Field(min_length=1, max_length=1024)


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    role: str


class UserPublic(_Out):
    username: str
    display_name: str
    role: str


class SitePublic(BaseModel):
    code: str
    name: Name
    timezone: str
    buildings: int
    checkpoints: int
    devices: int


class BuildingPublic(BaseModel):
    code: str
    name: Name
    floors_above: int
    floors_below: int


class CheckpointPublic(BaseModel):
    code: str
    name: Name
    type: str
    building: str | None
    floor: str | None
    tag_uid: str | None
    active: bool


class DevicePublic(BaseModel):
    code: str
    kind: str
    name: Name
    location: str | None
    holder: str | None
    active: bool
    online: bool | None
    battery_pct: int | None
    rssi: int | None
    firmware: str | None
    status_at: datetime | None


class SignInPublic(SignInEvent):
    """A stored sign-in: the live feed's `signin` event (the same model) with its id, site and the
    reader's message id."""

    id: int
    site: str
    message_id: str


class QuarantinePublic(BaseModel):
    """A row of the quarantine list: bounded, without the payload (GET /api/v1/quarantine/{id} has it)."""

    id: int
    received_at: datetime  # first seen
    last_seen: datetime
    count: int  # deliveries of this same rejection (same topic, reason and bytes) folded into the row
    topic: str
    site: str | None
    device: str | None
    reason: str
    detail: str
    size: int  # of the whole payload, in bytes
    sha256: str | None  # of the whole payload (rows kept before revision 0004 have none)


class QuarantineItemPublic(QuarantinePublic):
    """One quarantined message with the payload prefix that was kept (at most 4 KiB)."""

    kept_bytes: int
    truncated: bool
    payload_text: str | None  # the kept prefix as UTF-8 (to its last whole character), when it is UTF-8
    payload_base64: str  # the kept prefix


class RejectionCount(BaseModel):
    reason: str
    rows: int  # quarantine rows
    messages: int  # deliveries, repeats folded into the rows included


class SourceRejections(BaseModel):
    """Rejections of one source: a device, the unknown devices of a site, or everything else."""

    source: str  # "device:{site}/{device}", "site:{site}" or "other"
    site: str | None
    device: str | None
    rows: int
    messages: int
    over_budget: int  # rejections only counted, not kept: the source was over its hourly budget
    flagged: bool  # over budget within the last hour: for the control room to look at
    last_over_at: datetime | None


class QuarantineSummaryPublic(BaseModel):
    """Rejection totals from the database, wherever the gateway runs (docs/metrics.md)."""

    rows: int
    messages: int
    over_budget: int
    budget_per_hour: int
    by_reason: list[RejectionCount]
    by_source: list[SourceRejections]  # most messages first, at most `limit`


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of newest-first results; pass `next_before_id` as `before_id` for the next page."""

    items: list[T]
    next_before_id: int | None

    @classmethod
    def of(cls, items: list[T], limit: int) -> Page[T]:
        """A full page may have more behind it; a short one is the last."""
        last = getattr(items[-1], "id", None) if len(items) == limit else None
        return cls(items=items, next_before_id=last)
