"""Deadline queries: schedule (which also moves), cancel, claim the due ones, record a failure.

Every function works inside the caller's transaction, so a deadline is scheduled or cancelled
atomically with the change that calls for it (an alarm raised, an alarm acknowledged), and fired
atomically with its handler's effect. What makes "fires once" hold across processes:

* `claim_due` claims with ONE write statement. On PostgreSQL its inner SELECT locks the rows it
  picks `FOR UPDATE SKIP LOCKED`, so two sweepers take disjoint batches without waiting on each
  other. On SQLite (SQLAlchemy drops FOR UPDATE there) the UPDATE takes the database's single
  write lock before it reads, so a second process waits for the first to commit instead of
  claiming from a stale snapshot.
* The claim marks the rows `fired` at once, inside the sweeper's still-open transaction: nobody
  else sees that until the commit, a crash rolls it back to `pending`, and a handler may schedule
  the next deadline of its own (kind, subject) — the row being fired no longer holds the
  "one pending per (kind, subject)" slot.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.deadlines import Deadline, DeadlineState, check_key, next_attempt
from storage.db import upsert_insert
from storage.models import DeadlineRow
from storage.models.deadline import PENDING_ONLY

PENDING = DeadlineState.PENDING.value
_T = DeadlineRow
_COLUMNS = (_T.id, _T.kind, _T.subject, _T.due_at, _T.payload, _T.attempts)
_NO_SYNC = {"synchronize_session": False}  # no ORM objects of this table are loaded: skip the bookkeeping


def _deadline(row: Row[Any]) -> Deadline:
    return Deadline(row.id, row.kind, row.subject, row.due_at, dict(row.payload or {}), row.attempts)


def schedule(
    session: Session,
    kind: str,
    subject: str,
    due_at: datetime,
    payload: Mapping[str, Any] | None,
    now: datetime,
    *,
    replace: bool = True,
) -> int | None:
    """Make (kind, subject) due at `due_at`; returns the pending row's id.

    One upsert on the partial unique index, never a check-then-insert, so two processes
    scheduling the same subject at once still leave one pending deadline. When one is already
    pending it is MOVED to `due_at` with the new payload and a fresh retry count; with
    `replace=False` it is kept as it is and None is returned (for "schedule unless scheduled")."""
    check_key(kind, subject)
    stmt = upsert_insert(session, _T).values(
        kind=kind,
        subject=subject,
        due_at=due_at,
        payload=dict(payload or {}),
        state=PENDING,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    # The conflict target repeats the partial index's own predicate (the same SQL text), which is
    # how both databases tell which unique index an upsert is about.
    keys, where = [_T.kind, _T.subject], PENDING_ONLY
    if replace:
        new = stmt.excluded
        moved = {"due_at": new.due_at, "payload": new.payload, "attempts": 0, "last_error": None}
        upsert = stmt.on_conflict_do_update(
            index_elements=keys, index_where=where, set_={**moved, "updated_at": new.updated_at}
        )
    else:
        upsert = stmt.on_conflict_do_nothing(index_elements=keys, index_where=where)
    return session.execute(upsert.returning(_T.id)).scalar_one_or_none()


def cancel(session: Session, kind: str, subject: str, now: datetime, *, skip_locked: bool = False) -> bool:
    """Cancel the pending (kind, subject) deadline. False when none is pending: it never was, was
    cancelled already, or has fired (a sweeper firing it meanwhile makes this wait for its commit,
    then find nothing pending), so the caller knows whether it came in time."""
    where = [_T.kind == kind, _T.subject == subject, _T.state == PENDING]
    if skip_locked:
        # a sweeper firing it holds its row until it commits: do not wait (the handler re-checks
        # its subject under that subject's lock, so the cancellation is not needed for safety)
        free = select(_T.id).where(*where).with_for_update(skip_locked=True).scalar_subquery()
        where = [_T.id.in_(free)]
    stmt = (
        update(_T)
        .where(*where)
        .values(state=DeadlineState.CANCELLED.value, updated_at=now)
        .execution_options(**_NO_SYNC)
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def claim_due(session: Session, now: datetime, limit: int, kinds: Collection[str]) -> list[Deadline]:
    """Claim up to `limit` pending deadlines of `kinds` due at `now`, earliest first, marking them
    fired at `now` in this transaction; the caller runs their handlers and commits (module
    docstring). Only the kinds the caller can fire: during a rolling upgrade an older process
    leaves a new kind to the processes that know it, instead of failing it."""
    ids = (
        select(_T.id)
        .where(_T.state == PENDING, _T.due_at <= now, _T.kind.in_(list(kinds)))
        .order_by(_T.due_at, _T.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # MATERIALIZED: the locking SELECT runs exactly once, whatever plan the UPDATE gets
        due = ids.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        picked = select(due.c.id)
    else:
        # The statement must start with UPDATE: Python's sqlite3 opens the transaction (BEGIN) only
        # before a statement it sees as a write, and a `WITH … UPDATE` it does not, so the claim
        # committed on its own, before the handlers ran; a crash then lost their effects. SQLite
        # has one writer at a time: there are no row locks to skip.
        picked = ids
    stmt = (
        update(_T)
        # `state` again: should a row change under PostgreSQL's READ COMMITTED re-check, it is skipped
        .where(_T.id.in_(picked), _T.state == PENDING)
        .values(state=DeadlineState.FIRED.value, fired_at=now, updated_at=now)
        .returning(*_COLUMNS)
        .execution_options(**_NO_SYNC)
    )
    claimed = [_deadline(row) for row in session.execute(stmt)]
    claimed.sort(key=lambda d: (d.due_at, d.id))  # RETURNING's order is not defined
    return claimed


def record_failure(session: Session, deadline: Deadline, error: str, now: datetime) -> DeadlineState:
    """A claimed deadline whose handler raised: pending again after the backoff, or `failed` once
    it has used up its attempts (core.deadlines.next_attempt). Returns the state it was left in."""
    failures = deadline.attempts + 1
    retry_at = next_attempt(failures, now)
    values: dict[str, Any] = {"attempts": failures, "last_error": error, "fired_at": None, "updated_at": now}
    if retry_at is None:
        values["state"] = state = DeadlineState.FAILED
    else:
        values.update(state=PENDING, due_at=retry_at)
        state = DeadlineState.PENDING
    by_id = update(_T).where(_T.id == deadline.id).execution_options(**_NO_SYNC)
    try:
        with session.begin_nested():
            session.execute(by_id.values(**values))
    except IntegrityError:
        # Another handler in this same transaction scheduled a new (kind, subject) deadline, which
        # holds the one pending slot: that newer schedule wins, this one is closed with its error.
        values.update(state=DeadlineState.CANCELLED, last_error=f"superseded by a newer schedule; {error}")
        values.pop("due_at", None)
        session.execute(by_id.values(**values))
        state = DeadlineState.CANCELLED
    return state


def postpone(session: Session, deadline: Deadline, due_at: datetime, now: datetime) -> DeadlineState:
    """A claimed deadline back to pending at `due_at`, its attempts unchanged (its subject was busy,
    core.deadlines.SubjectBusy). If this transaction scheduled a newer one of the same (kind,
    subject) meanwhile, that one stands and this one is closed."""
    values: dict[str, Any] = {"state": PENDING, "due_at": due_at, "fired_at": None, "updated_at": now}
    by_id = update(_T).where(_T.id == deadline.id).execution_options(**_NO_SYNC)
    try:
        with session.begin_nested():
            session.execute(by_id.values(**values))
    except IntegrityError:
        session.execute(by_id.values(state=DeadlineState.CANCELLED.value, updated_at=now, last_error="superseded"))
        return DeadlineState.CANCELLED
    return DeadlineState.PENDING


def next_due(session: Session, kinds: Collection[str]) -> datetime | None:
    """The earliest due time of any pending deadline of `kinds` (also ones other sweepers hold now)."""
    stmt = select(func.min(_T.due_at)).where(_T.state == PENDING, _T.kind.in_(list(kinds)))
    return session.execute(stmt).scalar_one_or_none()
