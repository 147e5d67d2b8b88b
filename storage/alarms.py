"""Alarm rows: the rule state lock, and raising, repeating, changing and clearing the one active
alarm of a (device, alarm type).

Every function works in the caller's transaction. Two gateways judging readings of one sensor
serialise on the rule state's row (`lock_rule_state`), and the unique partial index on active
alarms (storage.models.incidents) stands behind that: an insert that loses a race finds the
winner's row instead of opening a second alarm.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.deadlines import SubjectBusy
from core.severity import severity_rank
from storage.db import upsert_insert
from storage.models import Alarm, AlarmSnooze, RuleState
from storage.models.incidents import ALARM_ACTIVE


@dataclass(frozen=True, slots=True)
class Where:
    """Where a device is, copied onto its alarms and tickets for roll-ups and routing."""

    location_id: int | None = None
    building_id: int | None = None
    floor: int | None = None


def lock_rule_state(
    session: Session, device_id: int, alarm_type: str, now: datetime, *, nowait: bool = False
) -> tuple[int, dict[str, Any]]:
    """The (device, alarm type)'s rule state row, created empty if missing, locked for this
    transaction (FOR UPDATE on PostgreSQL; SQLite's single writer already serialises). `nowait`
    (the deadline engine): raise SubjectBusy rather than wait for another transaction."""
    stmt = (
        select(RuleState.id, RuleState.state)
        .where(RuleState.device_id == device_id, RuleState.alarm_type == alarm_type)
        .with_for_update(nowait=nowait)
    )
    with busy_as_subject_busy():  # look first: an insert meeting a row another transaction holds would wait
        row = session.execute(stmt).one_or_none()
        if row is None:  # its first judgement: made, then locked
            empty = {"device_id": device_id, "alarm_type": alarm_type, "state": {}, "updated_at": now}
            insert = upsert_insert(session, RuleState).values(**empty)
            session.execute(insert.on_conflict_do_nothing(index_elements=[RuleState.device_id, RuleState.alarm_type]))
            row = session.execute(stmt).one()
    return row.id, dict(row.state or {})


@contextmanager
def busy_as_subject_busy() -> Iterator[None]:
    """A NOWAIT lock that another transaction holds (PostgreSQL's lock_not_available) becomes
    core.deadlines.SubjectBusy: the deadline engine tries again shortly instead of waiting."""
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == "55P03":
            raise SubjectBusy(str(exc.orig)) from exc
        raise


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
    # insert first: the rule state said there was no alarm, so this is the one statement it costs;
    # a conflict means another transaction's alarm is active, and that one is repeated instead
    stmt = upsert_insert(session, Alarm).values(**values)
    keys = [Alarm.device_id, Alarm.alarm_type]
    created = session.scalars(
        stmt.on_conflict_do_nothing(index_elements=keys, index_where=ALARM_ACTIVE).returning(Alarm)
    ).one_or_none()
    if created is not None:
        return created, True
    found = active_alarm(session, device_id, alarm_type)
    if found is None:  # pragma: no cover - the index conflict names a row that exists
        raise RuntimeError(f"active alarm of device {device_id} type {alarm_type} vanished")
    repeat(found, at, value)
    return found, False


def repeat(alarm: Alarm, at: datetime, value: Mapping[str, Any]) -> None:
    alarm.count += 1
    alarm.last_value = dict(value)
    if at > alarm.last_seen:
        alarm.last_seen = at


def set_severity(alarm: Alarm, severity: str) -> None:
    alarm.severity = severity
    if severity_rank(severity) > severity_rank(alarm.peak_severity):
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
