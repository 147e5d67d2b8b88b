"""One handler per message kind, registered by channel; `apply_batch` runs a batch through them."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from gateway.effects import Effects
from gateway.handlers.base import Context, Handler
from gateway.handlers.quarantine import handle_rejected
from gateway.handlers.readings import handle_event, handle_telemetry
from gateway.handlers.status import handle_status
from gateway.handlers.tap import handle_taps
from gateway.messages import Accepted, Rejected

#: In this order within a batch's transaction, so every batch takes row locks table by table in
#: the same order (staff for taps, then devices for status) and two gateways cannot deadlock.
HANDLERS: dict[str, Handler] = {
    "tap": handle_taps,
    "telemetry": handle_telemetry,
    "event": handle_event,
    "status": handle_status,
}


def apply_batch(
    session: Session,
    accepted: list[Accepted],
    rejected: list[Rejected],
    ctx: Context,
    handlers: Mapping[str, Handler],
) -> Effects:
    """Every message of a decoded batch, by kind (`HANDLERS`, or a test's), inside the caller's transaction."""
    effects = handle_rejected(session, rejected, ctx.quarantine_budget_per_hour)  # first: its locks come first
    by_channel: dict[str, list[Accepted]] = {}
    for msg in accepted:
        by_channel.setdefault(msg.channel, []).append(msg)
    for channel, handler in handlers.items():
        if channel in by_channel:
            effects.merge(handler(session, by_channel.pop(channel), ctx))
    if by_channel:  # decode only accepts the contract's channels: this is a bug, not bad input
        raise LookupError(f"no handler registered for {sorted(by_channel)}")
    return effects


__all__ = ["HANDLERS", "Context", "Handler", "apply_batch"]
