"""The per-batch statements of the sensor path, one statement each whatever the batch's size.

A batch of readings touches one rule state, one latest value and one silence check per sensor.
On PostgreSQL each is one `… unnest(arrays)` statement (as storage/bulk_insert.py does for the
message log): an executemany of 100 sensors is 100 statements the server parses and plans, and at
1,000 readings a second from a few hundred sensors those round trips were most of a batch's time.
SQLite, in-process, takes SQLAlchemy Core's executemany of one cached statement.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from core.deadlines import check_key
from storage.models import DeadlineRow, RuleState, SensorLatest
from storage.models.deadline import PENDING_ONLY

Key = tuple[int, str]

_PG_LOCK = """
INSERT INTO rule_states (device_id, alarm_type, state, updated_at)
SELECT d, t, '{}'::json, %(now)s FROM unnest(%(devices)s::int[], %(types)s::text[]) AS u(d, t)
ON CONFLICT (device_id, alarm_type) DO UPDATE SET updated_at = EXCLUDED.updated_at
RETURNING id, device_id, alarm_type, state
"""
_PG_SAVE = """
UPDATE rule_states SET state = u.s::json, updated_at = %(now)s
FROM unnest(%(ids)s::bigint[], %(states)s::text[]) AS u(i, s) WHERE rule_states.id = u.i
"""
_PG_LATEST = """
INSERT INTO sensor_latest (device_id, site_id, kind, observed_at, "values", msg_id)
SELECT * FROM unnest(%(device_id)s::int[], %(site_id)s::int[], %(kind)s::text[], %(observed_at)s::timestamptz[],
                     %(values)s::json[], %(msg_id)s::text[])
ON CONFLICT (device_id) DO UPDATE SET kind = EXCLUDED.kind, observed_at = EXCLUDED.observed_at,
    "values" = EXCLUDED."values", msg_id = EXCLUDED.msg_id
WHERE sensor_latest.observed_at <= EXCLUDED.observed_at
"""
_PG_SCHEDULE = """
INSERT INTO deadlines (kind, subject, due_at, payload, state, attempts, created_at, updated_at)
SELECT %(kind)s, s, d, p::json, 'pending', 0, %(now)s, %(now)s
FROM unnest(%(subjects)s::text[], %(dues)s::timestamptz[], %(payloads)s::text[]) AS u(s, d, p)
ON CONFLICT (kind, subject) WHERE state = 'pending' DO NOTHING
"""


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_rule_states(session: Session, keys: Sequence[Key], now: datetime) -> dict[Key, tuple[int, dict[str, Any]]]:
    """Each (device, alarm type)'s rule state, made if missing and locked for this transaction, in
    (device, alarm type) order: the order every gateway locks in, so two cannot deadlock.
    Returns {key: (row id, state)}."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    if _pg(session):  # DO UPDATE locks the row it meets; the rows are met in the order given
        params = {"now": now, "devices": [d for d, _ in wanted], "types": [t for _, t in wanted]}
        rows = session.connection().exec_driver_sql(_PG_LOCK, params)
        return {(d, t): (i, dict(s or {})) for i, d, t, s in rows}
    empty = [{"device_id": d, "alarm_type": t, "state": {}, "updated_at": now} for d, t in wanted]
    session.connection().execute(sqlite.insert(RuleState).on_conflict_do_nothing(), empty)
    found = session.execute(
        select(RuleState.id, RuleState.device_id, RuleState.alarm_type, RuleState.state).where(
            tuple_(RuleState.device_id, RuleState.alarm_type).in_(wanted)
        )
    )
    return {(r.device_id, r.alarm_type): (r.id, dict(r.state or {})) for r in found}


def save_rule_states(session: Session, states: Mapping[int, Mapping[str, Any]], now: datetime) -> None:
    """Store rule states (row id → state)."""
    if not states:
        return
    ordered = sorted(states.items())
    if _pg(session):
        params = {"now": now, "ids": [i for i, _ in ordered], "states": [json.dumps(dict(s)) for _, s in ordered]}
        session.connection().exec_driver_sql(_PG_SAVE, params)
        return
    table = RuleState.__table__
    stmt = (
        update(table)  # type: ignore[arg-type]
        .where(table.c.id == bindparam("row_id"))
        .values(state=bindparam("new_state"), updated_at=bindparam("now"))
    )
    session.connection().execute(stmt, [{"row_id": i, "new_state": dict(s), "now": now} for i, s in ordered])


def store_latest(session: Session, rows: list[dict[str, Any]]) -> None:
    """Each sensor's newest reading (rows keyed as `sensor_latest`'s columns, one per device); an
    older reading arriving late does not replace a newer one."""
    if not rows:
        return
    if _pg(session):
        params = {c: [r[c] for r in rows] for c in ("device_id", "site_id", "kind", "observed_at", "msg_id")}
        params["values"] = [json.dumps(r["values"]) for r in rows]
        session.connection().exec_driver_sql(_PG_LATEST, params)
        return
    stmt = sqlite.insert(SensorLatest)
    new = stmt.excluded
    upsert = stmt.on_conflict_do_update(
        index_elements=["device_id"],
        set_={k: new[k] for k in ("kind", "observed_at", "values", "msg_id")},
        where=SensorLatest.observed_at <= new.observed_at,
    )
    session.connection().execute(upsert, rows)


def schedule_absent(
    session: Session, kind: str, items: Sequence[tuple[str, datetime, Mapping[str, Any]]], now: datetime
) -> None:
    """Deadlines of one kind for many subjects, each (subject, due_at, payload) unless one is
    already pending (storage.deadlines.schedule with replace=False, for a whole batch)."""
    if not items:
        return
    for subject, _, _ in items:
        check_key(kind, subject)
    ordered = sorted(items, key=lambda item: item[0])
    if _pg(session):
        params = {
            "kind": kind,
            "now": now,
            "subjects": [s for s, _, _ in ordered],
            "dues": [d for _, d, _ in ordered],
            "payloads": [json.dumps(dict(p)) for _, _, p in ordered],
        }
        session.connection().exec_driver_sql(_PG_SCHEDULE, params)
        return
    rows = [
        {"kind": kind, "subject": s, "due_at": d, "payload": dict(p), "state": "pending", "attempts": 0,
         "created_at": now, "updated_at": now}
        for s, d, p in ordered
    ]  # fmt: skip
    stmt = sqlite.insert(DeadlineRow).on_conflict_do_nothing(
        index_elements=["kind", "subject"], index_where=PENDING_ONLY
    )
    session.connection().execute(stmt, rows)
