"""What every message handler gets and shares: the batch's context and the idempotent log insert,
which also tells a redelivery from a reused id and judges the device's clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from core.config import Settings
from core.contract import RejectReason, same_message
from core.device_clock import ClockWindow, DeviceTime, judge_device_time
from core.directory import Directory
from core.ingest import first_of_each
from gateway.effects import Effects
from gateway.handlers.quarantine import handle_rejected
from gateway.incidents import Incidents, default_incidents
from gateway.messages import Accepted, Rejected
from storage.bulk_insert import insert_messages
from storage.message_log import MessageKey, stored_messages


@dataclass(frozen=True, slots=True)
class Context:
    """The directory the batch was decoded against, the clock's time when it was applied, where a
    device's `ts` is believed (Settings.clock_window), the quarantine's budget per source, and
    the incident machinery (procedures, webhooks, telemetry sink, alarm rules)."""

    directory: Directory
    now: datetime
    clock_window: ClockWindow = field(default_factory=ClockWindow)
    quarantine_budget_per_hour: int = Settings.model_fields["quarantine_budget_per_hour"].default
    incidents: Incidents = field(default_factory=default_incidents)


#: A handler takes its messages of one batch (in arrival order) inside the batch's transaction.
Handler = Callable[[Session, list[Accepted], Context], Effects]


def key(msg: Accepted) -> MessageKey:
    return (msg.device.id, str(msg.msg_id))


@dataclass(frozen=True, slots=True)
class Logged:
    """What `log_new` found: the messages it logged, when they count, and the id conflicts."""

    new: dict[MessageKey, int]  # {key: log row id} of the messages this call logged
    times: dict[MessageKey, DeviceTime]  # of the new ones: the time rules use, and the clock skew
    conflicts: frozenset[int]  # id() of the messages refused as `id_conflict` (already answered)

    def conflicted(self, msg: Accepted) -> bool:
        return id(msg) in self.conflicts


def log_new(session: Session, msgs: list[Accepted], ctx: Context, effects: Effects) -> Logged:
    """Insert the messages' log rows. Only the new ones get an effect: a redelivery, a re-send or a
    second copy in this batch finds its key taken. A message under a taken key that is not the
    same message (another tap reusing the id after a counter reset) is no redelivery: it is
    quarantined as `id_conflict` (and answered so, if a tap), never given the old one's effect."""
    firsts = first_of_each(msgs, key)
    times = {key(m): judge_device_time(_device_ts(m), m.raw.received_at, ctx.clock_window) for m in firsts}
    rows = [
        {
            "site_id": m.device.site_id,
            "device_id": m.device.id,
            "msg_id": m.msg_id,
            "kind": m.channel,
            "device_ts": m.device_ts,
            "received_at": m.raw.received_at,
            "payload": m.raw.payload.decode("utf-8"),
            "clock_skew_s": times[key(m)].skew_s,
        }
        for m in firsts
    ]
    new = insert_messages(session, rows)
    conflicts = _conflicts(session, msgs, {key(m): m for m in firsts if key(m) in new})
    effects.duplicates += len(msgs) - len(new) - len(conflicts)
    if conflicts:
        effects.merge(handle_rejected(session, [r for _, r in conflicts], ctx.quarantine_budget_per_hour))
    return Logged(new, {k: t for k, t in times.items() if k in new}, frozenset(id(m) for m, _ in conflicts))


def _conflicts(
    session: Session, msgs: list[Accepted], logged_now: dict[MessageKey, Accepted]
) -> list[tuple[Accepted, Rejected]]:
    """The messages whose key is taken by a different message: the one logged by this batch, or
    the one logged before (compared as parsed under the contract: `core.contract.same_message`)."""
    held = stored_messages(session, (k for m in msgs if (k := key(m)) not in logged_now))
    found: list[tuple[Accepted, Rejected]] = []
    for m in msgs:
        first = logged_now.get(key(m))
        if first is m:
            continue
        if first is not None:
            same, used_at = first.model == m.model, first.raw.received_at
        elif (stored := held.get(key(m))) is not None:  # a broker's redelivery has the same bytes: no parse
            same = stored.payload == m.raw.payload.decode("utf-8") or same_message(m.channel, m.model, stored.payload)
            used_at = stored.received_at
        else:  # the row is gone (retention) since the insert found it: nothing to compare with
            continue
        if not same:
            detail = _conflict_detail(m, used_at)
            found.append((m, Rejected(m.raw, RejectReason.ID_CONFLICT, detail, m.topic, m.msg_id)))
    return found


def _conflict_detail(msg: Accepted, used_at: datetime) -> str:
    return (
        f"device {msg.device.code!r} reused message id {msg.msg_id!r}, first used at "
        f"{used_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} for a different {msg.channel}: this one was kept here "
        "and not applied. An id must be unique for the device's whole life (e.g. a boot counter plus a "
        "sequence, or a ULID): fix the device's id counter"
    )


def _device_ts(msg: Accepted) -> datetime:
    ts = msg.device_ts
    if ts is None:  # taps, telemetry and events require `ts`; status is not logged
        raise ValueError(f"a logged {msg.channel} message needs a ts")
    return ts
