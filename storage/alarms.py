"""Alarm rows: the rule state lock, and raising, repeating, changing and clearing the one active
alarm of a (device, alarm type).

Every function works in the caller's transaction. Two gateways judging readings of one sensor
serialise on the rule state's row (`lock_rule_state`), and the unique partial index on active
alarms (storage.models.incidents) stands behind that: an insert that loses a race finds the
winner's row instead of opening a second alarm.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from storage.db import upsert_insert
from storage.models import Alarm, AlarmSnooze, RuleState
from storage.models.incidents import ALARM_ACTIVE


@dataclass(frozen=True, slots=True)
class Where:
    """Where a device is, copied onto its alarms and tickets for roll-ups and routing."""

    location_id: int | None = None
    building_id: int | None = None
    floor: int | None = None


def lock_rule_state(session: Session, device_id: int, alarm_type: str, now: datetime) -> tuple[int, dict[str, Any]]:
    """The (device, alarm type)'s rule state row, created empty if missing, locked for this
    transaction (FOR UPDATE on PostgreSQL; SQLite's single writer already serialises)."""
    stmt = upsert_insert(session, RuleState).values(
        device_id=device_id, alarm_type=alarm_type, state={}, updated_at=now
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=[RuleState.device_id, RuleState.alarm_type]))
    row = session.execute(
        select(RuleState.id, RuleState.state)
        .where(RuleState.device_id == device_id, RuleState.alarm_type == alarm_type)
        .with_for_update()
    ).one()
    return row.id, dict(row.state or {})


def lock_rule_states(
    session: Session, keys: Iterable[tuple[int, str]], now: datetime
) -> dict[tuple[int, str], tuple[int, dict[str, Any]]]:
    """`lock_rule_state` for a whole batch in two statements, whatever its size: the missing rows
    made, then every row locked in (device, alarm type) order, the order every gateway locks in."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    empty = [{"device_id": d, "alarm_type": t, "state": {}, "updated_at": now} for d, t in wanted]
    table = RuleState.__table__
    stmt = upsert_insert(session, table).on_conflict_do_nothing(index_elements=["device_id", "alarm_type"])
    session.execute(stmt, empty)  # one cached statement, executemany: a batch's size does not recompile it
    rows = session.execute(
        select(RuleState.id, RuleState.device_id, RuleState.alarm_type, RuleState.state)
        .where(tuple_(RuleState.device_id, RuleState.alarm_type).in_(wanted))
        .order_by(RuleState.device_id, RuleState.alarm_type)
        .with_for_update()
    )
    return {(r.device_id, r.alarm_type): (r.id, dict(r.state or {})) for r in rows}


def save_rule_states(session: Session, states: Mapping[int, Mapping[str, Any]], now: datetime) -> None:
    """Store several rule states (row id → state) in one executemany."""
    if states:
        rows = [{"row_id": i, "new_state": dict(st), "now": now} for i, st in sorted(states.items())]
        table = RuleState.__table__
        stmt = (
            update(table)  # type: ignore[arg-type]  # Core, not ORM: a plain executemany by id
            .where(table.c.id == bindparam("row_id"))
            .values(state=bindparam("new_state"), updated_at=bindparam("now"))
        )
        session.connection().execute(stmt, rows)


def save_rule_state(session: Session, row_id: int, state: Mapping[str, Any], now: datetime) -> None:
    session.execute(update(RuleState).where(RuleState.id == row_id).values(state=dict(state), updated_at=now))


def active_alarm(session: Session, device_id: int, alarm_type: str) -> Alarm | None:
    return session.scalars(
        select(Alarm)
        .where(Alarm.device_id == device_id, Alarm.alarm_type == alarm_type, ALARM_ACTIVE)
        .with_for_update()
    ).one_or_none()


def raise_alarm(
    session: Session,
    *,
    site_id: int,
    device_id: int,
    alarm_type: str,
    severity: str,
    source: str,
    at: datetime,
    value: Mapping[str, Any],
    where: Where,
    code: str | None = None,
    flapping: bool = False,
) -> tuple[Alarm, bool]:
    """The active alarm of (device, type): a new one, or the one already active repeated
    (count, last value, last seen). Returns (alarm, created)."""
    held = active_alarm(session, device_id, alarm_type)
    if held is not None:
        repeat(held, at, value)
        return held, False
    values = {
        "site_id": site_id,
        "device_id": device_id,
        "alarm_type": alarm_type,
        "severity": severity,
        "peak_severity": severity,
        "source": source,
        "code": code,
        "location_id": where.location_id,
        "building_id": where.building_id,
        "floor": where.floor,
        "opened_at": at,
        "last_seen": at,
        "count": 1,
        "last_value": dict(value),
        "flapping": flapping,
    }
    stmt = upsert_insert(session, Alarm).values(**values)
    keys = [Alarm.device_id, Alarm.alarm_type]
    new_id = session.execute(
        stmt.on_conflict_do_nothing(index_elements=keys, index_where=ALARM_ACTIVE).returning(Alarm.id)
    ).scalar_one_or_none()
    if new_id is None:  # another transaction's insert won after our look: repeat that one
        held = active_alarm(session, device_id, alarm_type)
        if held is None:  # pragma: no cover - the index conflict names a row that exists
            raise RuntimeError(f"active alarm of device {device_id} type {alarm_type} vanished")
        repeat(held, at, value)
        return held, False
    alarm = session.get(Alarm, new_id)
    assert alarm is not None
    return alarm, True


def repeat(alarm: Alarm, at: datetime, value: Mapping[str, Any]) -> None:
    alarm.count += 1
    alarm.last_value = dict(value)
    if at > alarm.last_seen:
        alarm.last_seen = at


def set_severity(alarm: Alarm, severity: str, rank: Mapping[str, int]) -> None:
    alarm.severity = severity
    if rank[severity] > rank[alarm.peak_severity]:
        alarm.peak_severity = severity


def clear(alarm: Alarm, at: datetime) -> None:
    alarm.cleared_at = max(at, alarm.opened_at)


def snoozed_until(session: Session, device_id: int, now: datetime) -> datetime | None:
    """The end of the device's longest snooze still running at `now`, if any."""
    return session.execute(
        select(AlarmSnooze.until)
        .where(AlarmSnooze.device_id == device_id, AlarmSnooze.until > now)
        .order_by(AlarmSnooze.until.desc())
        .limit(1)
    ).scalar_one_or_none()
