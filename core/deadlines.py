"""Durable deadlines: what one is, what acts on it, and what happens when acting on it fails.

Patrol rounds (missed checkpoints), alarms (ack-by) and tickets (escalation) all need "do X at
time T, even if every process restarts in between" (DESIGN.md, "Deadlines live in the database").
The rows live in `storage.deadlines`; a sweeper (`gateway.sweeper`) fires the due ones. This module
holds the parts that need no database, so their rules are tested without one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from core.outbound import Outbound

MAX_KIND_CHARS = 64
MAX_SUBJECT_CHARS = 128
MAX_ERROR_CHARS = 2000
#: A handler that raised is tried again this many times in all, then the deadline is `failed`:
#: kept with its last error for an operator to see, never dropped and never retried for ever.
MAX_ATTEMPTS = 10
RETRY_BASE = timedelta(seconds=5)
RETRY_CAP = timedelta(minutes=15)


class DeadlineState(StrEnum):
    """Stored in `deadlines.state`. Only `pending` ones are ever due; the others are history."""

    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINISHED = frozenset({DeadlineState.FIRED, DeadlineState.CANCELLED, DeadlineState.FAILED})


@dataclass(frozen=True, slots=True)
class Deadline:
    """A claimed deadline as its handler sees it: a snapshot, so a handler cannot change the row
    behind the sweeper's back (it reschedules or cancels through `storage.deadlines`)."""

    id: int
    kind: str
    subject: str
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0  # failed runs so far: 0 on the first try


#: Acts on one due deadline inside the sweeper's transaction: `(session, deadline, now)` → out/
#: events to publish after the commit. The session is a SQLAlchemy `Session`, typed `Any` so this
#: pure layer does not import SQLAlchemy. Whatever the handler writes commits or rolls back together
#: with the deadline being marked fired, so the effect happens exactly once. Raising marks the
#: deadline for a retry (`next_attempt`) and undoes the handler's writes, not the other deadlines'.
DeadlineHandler = Callable[[Any, Deadline, datetime], Sequence[Outbound]]


class SubjectBusy(Exception):
    """Raised by a handler whose subject (a rule state, a ticket) another transaction holds: the
    deadline is tried again shortly, and this is not counted as a failure. A sweeper holds the
    deadlines it claimed until it commits, so a handler that waited for a subject's lock could
    deadlock with a gateway or the API holding that subject and waiting for the deadline's row."""


#: How soon a deadline whose subject was busy is tried again.
BUSY_RETRY = timedelta(seconds=1)


def check_key(kind: str, subject: str) -> None:
    """Refuse keys the table cannot hold, before the database refuses them mid-transaction."""
    if not kind or len(kind) > MAX_KIND_CHARS:
        raise ValueError(f"deadline kind must be 1..{MAX_KIND_CHARS} characters: {kind!r}")
    if not subject or len(subject) > MAX_SUBJECT_CHARS:
        raise ValueError(f"deadline subject must be 1..{MAX_SUBJECT_CHARS} characters: {subject!r}")


def retry_delay(failures: int) -> timedelta:
    """How long to wait after the `failures`-th failed run: 5 s, 10 s, 20 s, … capped at 15 min.
    Exponential so a handler broken by a bug does not hammer the database; capped so one that
    failed on a passing condition (a row locked, a site being reloaded) is not put off for hours."""
    if failures < 1:
        raise ValueError("retry_delay counts failures from 1")
    doublings = min(failures - 1, 20)  # 5 s · 2^20 is far past the cap; keeps the number small
    return min(RETRY_BASE * (2**doublings), RETRY_CAP)


def next_attempt(failures: int, now: datetime) -> datetime | None:
    """When a deadline whose handler has now failed `failures` times runs again; None when it has
    used up MAX_ATTEMPTS and is to be marked `failed`."""
    if failures >= MAX_ATTEMPTS:
        return None
    return now + retry_delay(failures)


def describe_error(exc: BaseException) -> str:
    """The `last_error` text: the exception's type and message, bounded so a huge message (a whole
    SQL statement, say) cannot bloat the table."""
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
