"""The idempotent message log and the stored effects that redeliveries are answered from.

Idempotency comes from the unique (device, msg_id) and INSERT … ON CONFLICT DO NOTHING RETURNING,
not from a check-then-insert: of two gateways racing on one message, exactly one gets its row back
and decides its effect; the other finds the effect stored and rebuilds its answer from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from core.taps import TapDecision
from storage.models import InboundMessage, SignIn

MessageKey = tuple[int, str]  # (device id, the device's message id)


def stored_decisions(session: Session, keys: Iterable[MessageKey]) -> dict[MessageKey, TapDecision]:
    """The sign-ins already stored for these taps (this transaction's included)."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    rows = session.execute(
        select(
            InboundMessage.device_id,
            InboundMessage.msg_id,
            SignIn.ok,
            SignIn.reason,
            SignIn.guard_id,
            SignIn.location_id,
            InboundMessage.clock_skew_s,
            SignIn.round_id,
            SignIn.result,
            SignIn.next_location_id,
        )
        .join(SignIn, SignIn.message_id == InboundMessage.id)
        .where(tuple_(InboundMessage.device_id, InboundMessage.msg_id).in_(wanted))
    )
    return {
        (r.device_id, r.msg_id): TapDecision(
            r.ok, r.reason, r.guard_id, r.location_id, r.clock_skew_s, r.round_id, r.result, r.next_location_id
        )
        for r in rows
    }


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """What the log holds under a message's key: to tell a redelivery from a reused id."""

    payload: str
    received_at: datetime


def stored_messages(session: Session, keys: Iterable[MessageKey]) -> dict[MessageKey, StoredMessage]:
    """The logged payloads under these keys (this transaction's included)."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    rows = session.execute(
        select(
            InboundMessage.device_id, InboundMessage.msg_id, InboundMessage.payload, InboundMessage.received_at
        ).where(tuple_(InboundMessage.device_id, InboundMessage.msg_id).in_(wanted))
    )
    return {(r.device_id, r.msg_id): StoredMessage(r.payload, r.received_at) for r in rows}


def lock_rows(session: Session, model: Any, ids: Iterable[int]) -> None:
    """Row locks on what a batch's effects change, always in id order so two gateways locking
    overlapping sets cannot deadlock. PostgreSQL only: SQLite has one writer at a time anyway."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted or session.connection().dialect.name != "postgresql":
        return
    # FOR NO KEY UPDATE: only non-key columns change, so rows that merely reference these (a new
    # alarm or rule state of the device, taking FOR KEY SHARE on it) are not blocked by the lock
    session.execute(select(model.id).where(model.id.in_(wanted)).order_by(model.id).with_for_update(key_share=True))
