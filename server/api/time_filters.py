"""Time filters of list endpoints (`?since=`, `?until=`): one strict parameter type.

Accepted: an RFC 3339 time WITH an offset (`2026-11-28T08:00:00+08:00`, `…Z`), or a plain date
(`2026-11-28`) read in the site's time zone (the `site` filter's, else UTC). A plain date stands for
the whole day: `since` starts at its first instant, `until` ends after its last, so
`since=D&until=D` is that one day. Refused with 422: a time without an offset (whose zone would be a
guess), epoch numbers (`0.5` was once read as 1970), anything else. Pydantic's own `datetime` reads
all three, so the parameter is parsed here instead.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Query
from pydantic import PlainValidator
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Site

ACCEPTED = (
    "an RFC 3339 time with an offset (2026-11-28T08:00:00+08:00 or 2026-11-28T00:00:00Z) "
    "or a date (2026-11-28, read in the site's time zone, else UTC); "
    "epoch numbers and times without an offset are not accepted"
)
_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?P<offset>[Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time_bound(value: object) -> datetime | date:
    """A query value as an aware datetime (normalised to UTC) or a calendar date; ValueError
    (which FastAPI answers with 422) naming the accepted forms otherwise."""
    if isinstance(value, datetime | date):  # already parsed (direct calls, defaults)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError(f"a time without an offset is ambiguous: use {ACCEPTED}")
        return value
    text = str(value).strip()
    try:
        if _DATE.match(text):
            return date.fromisoformat(text)
        m = _RFC3339.match(text)
        if m:
            return _instant(m)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid time: use {ACCEPTED}") from None
    raise ValueError(f"{text!r} is not a time this API reads: use {ACCEPTED}")


def _instant(m: re.Match[str]) -> datetime:
    """An RFC 3339 match as a UTC datetime: a leap second (:60) is read as the end of :59, and the
    first and last hours of the calendar, shifted past year 1 or 9999 by their offset, as its ends."""
    clock = m["time"]
    frac = (m["frac"] or "")[:6].ljust(6, "0")
    if clock.endswith(":60"):
        clock, frac = clock[:-2] + "59", "999999"
    offset = "+00:00" if m["offset"] in ("Z", "z") else m["offset"]
    parsed = datetime.fromisoformat(f"{m['date']}T{clock}.{frac}{offset}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return (datetime.min if parsed.year == 1 else datetime.max).replace(tzinfo=UTC)


def resolve_bound(bound: datetime | date, zone: tzinfo, *, end_of_day: bool) -> datetime:
    """The instant a filter bound stands for; a date is read in `zone` (see the module docstring)."""
    if isinstance(bound, datetime):
        return bound
    if end_of_day and bound == date.max:
        return datetime.max.replace(tzinfo=UTC)
    day = bound + timedelta(days=1) if end_of_day else bound
    try:
        return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    except OverflowError:  # the first or last day of the calendar in a zone east or west of UTC
        return (datetime.min if day.year == 1 else datetime.max).replace(tzinfo=UTC)


TimeBound = Annotated[
    datetime | date | None,
    PlainValidator(parse_time_bound, json_schema_input_type=datetime | date | None),
]
Since = Annotated[TimeBound, Query(description=f"at or after this time: {ACCEPTED}")]
Until = Annotated[TimeBound, Query(description=f"before this time (a date: up to the end of that day): {ACCEPTED}")]


def site_zone(session: Session, site: str | None) -> tzinfo:
    """Where a plain-date `since`/`until` is read: the filtered site's time zone, else UTC."""
    name = session.scalar(select(Site.timezone).where(Site.code == site)) if site else None
    return ZoneInfo(name) if name else UTC
