"""What the API returns; one `…Public` model per resource."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from core.outbound import Name, SignInEvent


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TokenRequest(BaseModel):
    username: str
    password: str


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
    id: int
    received_at: datetime
    topic: str
    site: str | None
    device: str | None
    reason: str
    detail: str
    payload_text: str | None
    payload_base64: str
    size: int


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
