"""The deadline engine's patrol work (issue 8 items 3 and 6): generating rounds ahead of time, and
deciding the moment a checkpoint's window shuts that it was missed, telling the control room once.

Exactly once across restarts and gateways: the missed point is marked (`missed_alerted_at`) in the
transaction that publishes its event, and the deadline engine commits the handler's effects with
the deadline's completion; a gateway killed before the commit leaves both undone, the next one
does both. The guard's staff row is locked before the round, in the order the tap handler takes them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.deadlines import Deadline, DeadlineHandler
from core.outbound import Outbound
from core.rounds import close_due, next_due
from storage import deadlines
from storage.db import held
from storage.incident_notes import IncidentEnv, Told, tell
from storage.models import Site
from storage.round_events import missed_notice, round_event
from storage.rounds import GENERATE, GENERATE_EVERY, ROUND_CLOSE, generate, lock_round, round_subject, save

log = logging.getLogger(__name__)


def patrol_handlers(env: IncidentEnv, lead: timedelta) -> dict[str, DeadlineHandler]:
    def generate_due(session: Session, deadline: Deadline, now: datetime) -> Sequence[Outbound]:
        site_id = int(deadline.payload["site_id"])
        generate(session, site_id, now, lead)
        site = held(session, Site, site_id)
        if site is not None and site.plans:  # a site whose plans were removed stops here
            deadlines.schedule(session, GENERATE, deadline.subject, now + GENERATE_EVERY, deadline.payload, now)
        return []

    def close(session: Session, deadline: Deadline, now: datetime) -> Sequence[Outbound]:
        return close_round(session, env, int(deadline.payload["round_id"]), now)

    return {GENERATE: generate_due, ROUND_CLOSE: close}


def close_round(session: Session, env: IncidentEnv, round_id: int, now: datetime) -> list[Outbound]:
    """Points whose window shut are missed; each missed point not yet told is told now (live feed,
    out/round/{id}, webhooks); a round that ended with a missed point opens an alert a supervisor
    closes with a comment. The next shut window is scheduled."""
    loaded = lock_round(session, round_id)
    if loaded is None:
        return []  # the round is gone
    was_final = loaded.row.ended_at is not None
    value, _ = close_due(loaded.value, now)
    save(session, loaded, value, now)
    untold = [p for p in loaded.points if p.result == "missed" and p.missed_alerted_at is None]
    for p in untold:
        p.missed_alerted_at = now
    ended_now = loaded.row.ended_at is not None and not was_final
    if ended_now and any(p.result == "missed" for p in loaded.points) and loaded.row.alert_closed_at is None:
        loaded.row.alert_open = True  # closed by a supervisor's comment (P1 §2.3: every round is followed)
    site = held(session, Site, loaded.row.site_id)
    told = Told()
    if site is not None and untold:
        event = round_event(session, loaded, "missed", now, missed=[p.checkpoint for p in untold])
        tell(session, env, told, site.code, event, missed_notice(event, site, now), now)
        log.warning("round %d (%s): missed %s", round_id, event.guard, ", ".join(event.missed))
    elif site is not None and ended_now:
        tell(session, env, told, site.code, round_event(session, loaded, "ended", now), None, now)
    due = next_due(loaded.value)
    if due is not None:
        deadlines.schedule(session, ROUND_CLOSE, round_subject(round_id), max(due, now), {"round_id": round_id}, now)
    return told.events
