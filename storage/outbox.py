"""The webhook outbox: notifications written with the change they tell about, delivered afterwards.

`enqueue` runs in the caller's transaction, so a change and its notification commit (or vanish)
together. The worker (gateway.webhook_worker) then delivers per target in three steps:

1. `claim_group`, in a short transaction of its own: the rows of one target to send now, LEASED to
   this worker (attempts + 1, next_attempt_at pushed `lease_s` ahead) and committed before any
   HTTP: no database lock is held while a receiver is slow, so on SQLite ingestion never waits
   for a webhook. On PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`, so two workers'
   claims never overlap; on SQLite the first statement writes (takes the database's one write
   lock), so claims are serialised instead of racing on a stale snapshot.
2. The worker posts the group outside any transaction.
3. `mark_sent` or `mark_failed` (backoff, then `failed` after MAX_ATTEMPTS) in a third transaction.

A worker that dies between 1 and 3 leaves its rows pending with the lease as their next attempt:
they are sent again when it runs out, so delivery is at-least-once and normally exactly once.

Grouping and order: a target's notices go out only when its OLDEST pending row is due and at least
`group_wait_s` old (a building's sensors all firing become one message, Alertmanager's group_wait),
and then together; a leased row is not due, so one group per target is in flight at a time. A row is
never sent while an earlier pending row of its ticket is left out of the group (order per ticket).
Rows are never deleted here: sent and failed rows are history (failed ones listed by `failed_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

from core.deadlines import MAX_ERROR_CHARS, retry_delay
from core.webhooks import Notice, WebhookTarget
from storage.models import OutboxMessage

PENDING, SENT, FAILED = "pending", "sent", "failed"
#: Failed posts of one row before it is `failed`: 5 s doubling to the 15 min cap (core.deadlines.retry_delay)
#: reaches the cap after ~21 min, so 100 attempts span about a day — a receiver down over a night is
#: caught up, a notice older than that is history rather than news.
MAX_ATTEMPTS = 100
_T = OutboxMessage
_COLUMNS = (
    _T.id,
    _T.target,
    _T.site_code,
    _T.ticket_id,
    _T.notice,
    _T.state,
    _T.attempts,
    _T.created_at,
    _T.next_attempt_at,
    _T.sent_at,
    _T.last_error,
)
_NO_SYNC = {"synchronize_session": False}  # no ORM objects of this table are loaded: skip the bookkeeping


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A row as read (a snapshot): the worker and the API never hold the ORM object."""

    id: int
    target: str
    site_code: str
    ticket_id: int | None
    notice: dict[str, Any]  # core.webhooks.Notice.to_dict(); `Notice.from_dict` reads it back
    state: str
    attempts: int  # posts started, this one included once claimed
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None


def _entry(row: Row[Any]) -> OutboxEntry:
    return OutboxEntry(*(getattr(row, c.key) for c in _COLUMNS))


def retry_at(attempts: int, now: datetime, max_attempts: int = MAX_ATTEMPTS) -> datetime | None:
    """When a row whose `attempts`-th post has just failed is tried again; None: give up (`failed`)."""
    if attempts >= max_attempts:
        return None
    return now + retry_delay(max(attempts, 1))


def enqueue(session: Session, targets: Sequence[WebhookTarget], notice: Notice, now: datetime) -> int:
    """One pending row per target that wants `notice`, in the caller's transaction. Returns rows added."""
    data = notice.to_dict()
    rows = [
        OutboxMessage(
            target=t.name,
            site_code=notice.site,
            ticket_id=notice.ticket_id,
            notice=data,
            state=PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
        for t in targets
        if t.wants(notice)
    ]
    session.add_all(rows)
    return len(rows)


def claim_group(
    session: Session, target: str, now: datetime, group_wait_s: float, limit: int, lease_s: float = 60.0
) -> list[OutboxEntry]:
    """Lease the rows of `target` to send now, in id order (module docstring); [] when its oldest
    pending row is not due, not `group_wait_s` old yet, or being sent by another worker. The caller
    commits the lease before posting; the entries carry `attempts` with this post counted."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    pending = (_T.target == target, _T.state == PENDING)
    oldest = select(func.min(_T.id)).where(*pending).scalar_subquery()
    if session.get_bind().dialect.name == "sqlite":
        # A write first: SQLite's write lock now, so a second process waits for this claim's commit.
        session.execute(update(_T).where(_T.id == oldest).values(attempts=_T.attempts).execution_options(**_NO_SYNC))
    head = session.execute(select(_T.id, _T.next_attempt_at, _T.created_at).where(_T.id == oldest)).first()
    if head is None or head.next_attempt_at > now or head.created_at > now - timedelta(seconds=group_wait_s):
        return []
    picked = session.execute(
        select(*_COLUMNS)
        .where(*pending, _T.next_attempt_at <= now)
        .order_by(_T.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not picked or picked[0].id != head.id:
        return []  # another worker holds the head of this target's queue: its group goes first
    group = _keep_ticket_order(session, target, [_entry(r) for r in picked])
    lease = now + timedelta(seconds=lease_s)
    session.execute(
        update(_T)
        .where(_T.id.in_([e.id for e in group]))
        .values(attempts=_T.attempts + 1, next_attempt_at=lease)
        .execution_options(**_NO_SYNC)
    )
    return [_claimed(e, lease) for e in group]


def _claimed(e: OutboxEntry, lease: datetime) -> OutboxEntry:
    return replace(e, attempts=e.attempts + 1, next_attempt_at=lease)


def _keep_ticket_order(session: Session, target: str, picked: list[OutboxEntry]) -> list[OutboxEntry]:
    """Drop a picked row when an earlier pending row of its ticket is not picked (not due, or held
    by another worker): a ticket's notices never overtake each other."""
    tickets = {e.ticket_id for e in picked if e.ticket_id is not None}
    if not tickets:
        return picked
    ids = {e.id for e in picked}
    earlier = session.execute(
        select(_T.id, _T.ticket_id).where(
            _T.target == target, _T.state == PENDING, _T.ticket_id.in_(tickets), _T.id < picked[-1].id
        )
    ).all()
    blocked_from: dict[int, int] = {}  # ticket → the first of its pending ids that was not picked
    for row in earlier:
        if row.id not in ids:
            blocked_from[row.ticket_id] = min(row.id, blocked_from.get(row.ticket_id, row.id))
    return [e for e in picked if e.ticket_id is None or e.id < blocked_from.get(e.ticket_id, e.id + 1)]


def mark_sent(session: Session, ids: Iterable[int], now: datetime) -> int:
    """The receiver took these rows. Only pending rows change (a re-sent row is marked once)."""
    stmt = (
        update(_T)
        .where(_T.id.in_(list(ids)), _T.state == PENDING)
        .values(state=SENT, sent_at=now)
        .execution_options(**_NO_SYNC)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def mark_failed(
    session: Session, ids: Iterable[int], error: str, now: datetime, max_attempts: int = MAX_ATTEMPTS
) -> list[int]:
    """The post of these (claimed) rows failed with `error`: each is due again after its backoff, or
    `failed` once it has used `max_attempts` (kept, with the error, for an operator). Returns the
    ids that are now `failed`."""
    error = error.replace("\x00", "")[:MAX_ERROR_CHARS]
    rows = session.execute(select(_T.id, _T.attempts).where(_T.id.in_(list(ids)), _T.state == PENDING)).all()
    gave_up: list[int] = []
    for row in rows:
        again = retry_at(row.attempts, now, max_attempts)
        values: dict[str, Any] = {"last_error": error}
        if again is None:
            values["state"] = FAILED
            gave_up.append(row.id)
        else:
            values["next_attempt_at"] = again
        session.execute(update(_T).where(_T.id == row.id).values(**values).execution_options(**_NO_SYNC))
    return gave_up


def next_due(session: Session, targets: Iterable[str], group_wait_s: float) -> datetime | None:
    """The earliest time one of `targets` may have a group to send (its oldest pending row due and
    `group_wait_s` old), for the worker's wait; None when nothing is pending for them."""
    heads = (
        select(func.min(_T.id)).where(_T.state == PENDING, _T.target.in_(list(targets))).group_by(_T.target)
    ).scalar_subquery()
    rows = session.execute(select(_T.next_attempt_at, _T.created_at).where(_T.id.in_(heads))).all()
    wait = timedelta(seconds=group_wait_s)
    return min((max(r.next_attempt_at, r.created_at + wait) for r in rows), default=None)


def outbox_summary(session: Session, now: datetime) -> dict[str, Any]:
    """Counts for the API and metrics: {"pending", "failed", "oldest_pending_age_s" (None: none
    pending), "targets": {name: {"pending", "failed"}}}."""
    rows = session.execute(
        select(_T.target, _T.state, func.count(), func.min(_T.created_at))
        .where(_T.state.in_([PENDING, FAILED]))
        .group_by(_T.target, _T.state)
    ).all()
    targets: dict[str, dict[str, int]] = {}
    oldest: datetime | None = None
    for target, state, count, first in rows:
        targets.setdefault(target, {PENDING: 0, FAILED: 0})[state] = count
        if state == PENDING and (oldest is None or first < oldest):
            oldest = first
    return {
        PENDING: sum(t[PENDING] for t in targets.values()),
        FAILED: sum(t[FAILED] for t in targets.values()),
        "oldest_pending_age_s": None if oldest is None else max((now - oldest).total_seconds(), 0.0),
        "targets": targets,
    }


def failed_rows(session: Session, target: str | None = None, limit: int = 100) -> list[OutboxEntry]:
    """Rows given up on, newest first, with their last error: what an operator looks at."""
    stmt = select(*_COLUMNS).where(_T.state == FAILED)
    if target is not None:
        stmt = stmt.where(_T.target == target)
    return [_entry(r) for r in session.execute(stmt.order_by(_T.id.desc()).limit(limit))]
