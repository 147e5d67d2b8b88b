"""Recurring chores as deadlines that reschedule themselves, so they run on time whether the
gateway is busy or idle, and with several gateways on one database in exactly one of them.

Each chore is one (kind, subject) deadline; its handler does one bounded step and schedules the
next run in the same transaction. `ensure_housekeeping` at start puts back any chore that is not
pending (a first start, or one that ended `failed` after its retries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.deadlines import Deadline, DeadlineHandler
from core.outbound import Outbound
from storage.deadlines import schedule
from storage.retention import prune_finished_deadlines, prune_quarantine, prune_telemetry

log = logging.getLogger(__name__)
PRUNE_TELEMETRY = "housekeeping.prune_telemetry"
PRUNE_DEADLINES = "housekeeping.prune_deadlines"
PRUNE_QUARANTINE = "housekeeping.prune_quarantine"
KINDS = (PRUNE_TELEMETRY, PRUNE_DEADLINES, PRUNE_QUARANTINE)
SUBJECT = "all"  # one of each chore per database, whatever the number of processes
PRUNE_STEP = 10_000  # rows per step: one step never holds the write lock long
AGAIN_SOON = timedelta(seconds=1)  # a full step: more is left, go on shortly
AGAIN_LATER = timedelta(minutes=10)  # caught up: look again in a while

Pruner = Callable[[Session, datetime, int], int]


def _bounded_prune(what: str, prune: Pruner, retention: timedelta) -> DeadlineHandler:
    """A handler that deletes up to PRUNE_STEP rows older than `retention`, then reschedules itself."""

    def handle(session: Any, deadline: Deadline, now: datetime) -> Sequence[Outbound]:
        cutoff = now - retention
        removed = prune(session, cutoff, PRUNE_STEP)
        again = AGAIN_SOON if removed >= PRUNE_STEP else AGAIN_LATER
        schedule(session, deadline.kind, deadline.subject, now + again, {}, now)
        if removed:
            log.info("pruned %d %s older than %s; next step in %s", removed, what, cutoff.isoformat(), again)
        return ()

    return handle


def housekeeping_handlers(retention_days: int, quarantine_days: int) -> dict[str, DeadlineHandler]:
    """Handlers of the housekeeping kinds: raw telemetry and finished deadlines are kept
    `retention_days` (Settings.telemetry_retention_days), quarantined input `quarantine_days`
    after it was last seen (Settings.quarantine_retention_days); sign-ins and events are never pruned."""
    if retention_days < 1 or quarantine_days < 1:
        raise ValueError("retention_days and quarantine_days must be at least 1")
    retention = timedelta(days=retention_days)
    return {
        PRUNE_TELEMETRY: _bounded_prune("telemetry messages", prune_telemetry, retention),
        PRUNE_DEADLINES: _bounded_prune("finished deadlines", prune_finished_deadlines, retention),
        PRUNE_QUARANTINE: _bounded_prune("quarantined messages", prune_quarantine, timedelta(days=quarantine_days)),
    }


def ensure_housekeeping(session: Session, now: datetime) -> None:
    """Schedule each chore now unless it is pending already; safe for several processes at once
    (an upsert that keeps the pending one, not a check-then-insert)."""
    for kind in KINDS:
        if schedule(session, kind, SUBJECT, now, {}, now, replace=False) is not None:
            log.info("scheduled housekeeping %s", kind)
