"""Applying one batch of decoded messages in one transaction; the idempotent write path.

Idempotency comes from the unique (device, msg_id) of the message log and INSERT … ON CONFLICT
DO NOTHING RETURNING, not from a check-then-insert: two gateways racing on the same message
still give it one effect, and a redelivered tap gets back the verdict stored the first time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from core.contract import AckPayload, TapPayload, ack_topic, out_topic
from core.directory import Directory
from core.i18n import reason_message
from core.taps import decide_tap
from gateway.messages import Accepted, Rejected
from storage.bulk_insert import insert_messages, insert_signins
from storage.models import Device, InboundMessage, QuarantinedMessage


def json_bytes(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.encode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Publication:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass
class BatchResult:
    """What to publish once the batch is committed, and what happened (for metrics and logs)."""

    publications: list[Publication] = field(default_factory=list)
    signins: int = 0
    signins_refused: int = 0
    duplicates: int = 0
    status_changes: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def merge(self, other: BatchResult) -> None:
        self.publications += other.publications
        self.signins += other.signins
        self.signins_refused += other.signins_refused
        self.duplicates += other.duplicates
        self.status_changes += other.status_changes
        self.rejected += other.rejected


def apply_batch(
    session: Session, accepted: list[Accepted], rejected: list[Rejected], directory: Directory
) -> BatchResult:
    result = BatchResult(rejected=list(rejected))
    _quarantine(session, rejected, result)
    logged = [m for m in accepted if m.channel != "status"]
    if logged:
        _log_messages(session, logged, directory, result)
    for msg in accepted:
        if msg.channel == "status":
            _apply_status(session, msg, result)
    return result


def _quarantine(session: Session, rejected: list[Rejected], result: BatchResult) -> None:
    if not rejected:
        return
    session.execute(
        insert(QuarantinedMessage),
        [
            {
                "received_at": r.raw.received_at,
                "topic": r.raw.topic,
                "site_code": r.topic.site if r.topic else None,
                "device_code": r.topic.device if r.topic else None,
                "reason": r.reason.value,
                "detail": r.detail[:2000],
                "payload": r.raw.payload,
            }
            for r in rejected
        ],
    )
    for r in rejected:
        if r.answer_reader and r.topic is not None:
            ack = AckPayload(id=r.msg_id, ok=False, reason=r.reason.value, message=reason_message(r.reason))
            result.publications.append(
                Publication(ack_topic(r.topic.site, r.topic.device), json_bytes(ack.model_dump(exclude_none=True)))
            )


def _log_messages(session: Session, msgs: list[Accepted], directory: Directory, result: BatchResult) -> None:
    decisions: dict[tuple[int, str], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for msg in msgs:
        key = (msg.device.id, str(msg.msg_id))
        if key in decisions:
            continue  # the same message twice in one batch: one effect, same answer
        verdict = _verdict(msg, directory)
        decisions[key] = verdict
        rows.append(
            {
                "site_id": msg.device.site_id,
                "device_id": msg.device.id,
                "msg_id": msg.msg_id,
                "kind": msg.channel,
                "device_ts": msg.device_ts,
                "received_at": msg.raw.received_at,
                "payload": msg.raw.payload.decode("utf-8"),
                "result": verdict or None,
            }
        )
    inserted = insert_messages(session, rows)
    stored = _stored_results(session, [k for k in decisions if k not in inserted])
    result.duplicates = len(msgs) - len(inserted)
    new_signins: list[tuple[dict[str, Any], Accepted]] = []
    for msg in msgs:
        if msg.channel != "tap":
            continue
        key = (msg.device.id, str(msg.msg_id))
        verdict = stored.get(key, decisions[key])  # a redelivery gets the answer stored the first time
        new_id = inserted.pop(key, None)  # popped: a second copy in this batch adds no sign-in
        if new_id is not None:
            new_signins.append((_signin_row(new_id, msg, verdict), msg))
        ack = {k: v for k, v in verdict.items() if not k.startswith("_")}
        result.publications.append(Publication(ack_topic(msg.device.site_code, msg.device.code), json_bytes(ack)))
    if new_signins:
        _record_signins(session, new_signins, directory, result)


def _record_signins(
    session: Session, signins: list[tuple[dict[str, Any], Accepted]], directory: Directory, result: BatchResult
) -> None:
    insert_signins(session, [row for row, _ in signins])
    result.signins = len(signins)
    result.signins_refused = sum(1 for row, _ in signins if not row["ok"])
    by_site: dict[str, list[dict[str, Any]]] = {}
    for row, msg in signins:
        by_site.setdefault(msg.device.site_code, []).append(_signin_event(row, msg.device.code, directory))
    for site, events in by_site.items():  # one QoS 1 message per batch: half the MQTT work per tap
        body = {"type": "signins", "items": events}
        result.publications.append(Publication(out_topic(site, "signins"), json_bytes(body)))


def _verdict(msg: Accepted, directory: Directory) -> dict[str, Any]:
    """The stored result of a message; for a tap it is the ack plus private `_` fields."""
    if msg.channel != "tap":
        return {}
    tap: TapPayload = msg.model
    decision = decide_tap(msg.device, tap.uid, directory)
    ack = decision.ack(tap.id, directory).model_dump(exclude_none=True)
    return {**ack, "_guard_id": decision.guard_id, "_location_id": decision.location_id}


def _stored_results(session: Session, keys: list[tuple[int, str]]) -> dict[tuple[int, str], dict[str, Any]]:
    if not keys:
        return {}
    rows = session.execute(
        select(InboundMessage.device_id, InboundMessage.msg_id, InboundMessage.result).where(
            tuple_(InboundMessage.device_id, InboundMessage.msg_id).in_(keys)
        )
    )
    return {(r.device_id, r.msg_id): (r.result or {}) for r in rows}


def _signin_row(message_id: int, msg: Accepted, verdict: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "site_id": msg.device.site_id,
        "device_id": msg.device.id,
        "guard_id": verdict.get("_guard_id"),
        "location_id": verdict.get("_location_id"),
        "tag_uid": msg.model.uid.upper(),
        "tapped_at": msg.device_ts,
        "received_at": msg.raw.received_at,
        "ok": bool(verdict.get("ok")),
        "reason": verdict.get("reason"),
    }


def _signin_event(row: dict[str, Any], device: str, directory: Directory) -> dict[str, Any]:
    place = directory.locations.get(row["location_id"]) if row["location_id"] else None
    guard = directory.staff.get(row["guard_id"]) if row["guard_id"] else None
    return {
        "type": "signin",
        "device": device,
        "guard": guard.code if guard else None,
        "guard_name": {"zh": guard.name_zh, "en": guard.name_en} if guard else None,
        "checkpoint": place.code if place else None,
        "checkpoint_name": {"zh": place.name_zh, "en": place.name_en} if place else None,
        "tag_uid": row["tag_uid"],
        "ok": row["ok"],
        "reason": row["reason"],
        "tapped_at": _iso(row["tapped_at"]),
        "received_at": _iso(row["received_at"]),
    }


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


def _apply_status(session: Session, msg: Accepted, result: BatchResult) -> None:
    """Last write wins by observation time, so an old retained status never hides a newer one."""
    status = msg.model
    at = status.ts or msg.raw.received_at
    values: dict[str, Any] = {"online": status.online, "status_at": at}
    for column, value in (("battery_pct", status.battery_pct), ("rssi", status.rssi), ("firmware", status.fw)):
        if value is not None:
            values[column] = value
    changed = session.execute(
        update(Device)
        .where(and_(Device.id == msg.device.id, or_(Device.status_at.is_(None), Device.status_at <= at)))
        .values(**values)
    ).rowcount  # type: ignore[attr-defined]
    if changed:
        result.status_changes += 1
        event = {
            "type": "device_status",
            "device": msg.device.code,
            "kind": msg.device.kind,
            **{k: (_iso(v) if isinstance(v, datetime) else v) for k, v in values.items()},
        }
        result.publications.append(
            Publication(
                out_topic(msg.device.site_code, "device", msg.device.code, "status"), json_bytes(event), retain=True
            )
        )
