"""What the findings API returns (issue 8 item 7): a finding with its photos and its ticket, the categories."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel

from core.findings import CATEGORIES
from core.outbound import Name

#: core.findings.CATEGORIES' codes, spelt out for the OpenAPI enum and the type checker (the assert keeps them equal).
CategoryCode = Literal[
    "facility",
    "cleanliness",
    "renovation",
    "door_open",
    "lock_damaged",
    "home_hazard",
    "dispute",
    "littering",
    "green_area",
    "illegal_parking",
    "fire_lane_blocked",
    "greening",
]
assert get_args(CategoryCode) == tuple(CATEGORIES)


class CategoryPublic(BaseModel):
    """A kind of finding: its label, the rule it follows, who acts first and the procedure of its ticket."""

    code: str
    name: Name
    source: str
    department: str
    procedure: str


class PhotoPublic(BaseModel):
    """A photo of a finding; `url` gives its bytes (GET, the same token)."""

    number: int  # from 1, as in /findings/{id}/photos/{number}
    type: str  # read from the bytes: image/jpeg, image/png, image/webp, image/heic, image/heif
    size: int
    sha256: str
    url: str


class FindingPublic(BaseModel):
    """A finding on the 公共区域现场巡视表, with the ticket it opened or joined."""

    id: int
    site: str
    location: str | None
    location_name: Name | None
    building: str | None
    round_id: int | None
    category: str
    category_name: Name
    source: str  # the rule, e.g. "P1 §2.6"
    note: str
    photos: list[PhotoPublic]
    reported_by: str
    created_at: datetime
    ticket_id: int | None


class FindingReportPublic(FindingPublic):
    """The answer to a report: `attached` when the finding joined a ticket already open for the same
    location and category (docs/findings.md) instead of opening one."""

    attached: bool
