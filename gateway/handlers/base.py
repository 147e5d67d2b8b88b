"""What every message handler gets and shares: the batch's context and the idempotent log insert."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from core.directory import Directory
from core.ingest import first_of_each
from gateway.effects import Effects
from gateway.messages import Accepted
from storage.bulk_insert import insert_messages
from storage.message_log import MessageKey


@dataclass(frozen=True, slots=True)
class Context:
    """The directory the batch was decoded against and the clock's time when it was applied."""

    directory: Directory
    now: datetime


#: A handler takes its messages of one batch (in arrival order) inside the batch's transaction.
Handler = Callable[[Session, list[Accepted], Context], Effects]


def key(msg: Accepted) -> MessageKey:
    return (msg.device.id, str(msg.msg_id))


def log_new(session: Session, msgs: list[Accepted], effects: Effects) -> dict[MessageKey, int]:
    """Insert the messages' log rows; {key: row id} of the ones that are new. Only those get an
    effect: a redelivery, a re-send or a second copy in this batch finds its key taken."""
    rows = [
        {
            "site_id": m.device.site_id,
            "device_id": m.device.id,
            "msg_id": m.msg_id,
            "kind": m.channel,
            "device_ts": m.device_ts,
            "received_at": m.raw.received_at,
            "payload": m.raw.payload.decode("utf-8"),
        }
        for m in first_of_each(msgs, key)
    ]
    new = insert_messages(session, rows)
    effects.duplicates += len(msgs) - len(new)
    return new
