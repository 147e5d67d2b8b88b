"""One handler per message kind, registered by channel; `apply_batch` runs a batch through them."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from gateway.effects import Effects
from gateway.handlers.base import Context, Handler
from gateway.handlers.quarantine import handle_rejected
from gateway.handlers.readings import handle_sensor_messages
from gateway.handlers.status import handle_status
from gateway.handlers.tap import handle_taps
from gateway.messages import Accepted, Rejected

#: In this order within a batch's transaction, so every batch takes row locks table by table in
#: the same order (staff for taps, then sensors' rule states, then devices for status) and two
#: gateways cannot deadlock. Channels registered with the same handler get one call together
#: (telemetry and events: a sensor's rule state is locked once, its messages applied in order).
HANDLERS: dict[str, Handler] = {
    "tap": handle_taps,
    "telemetry": handle_sensor_messages,
    "event": handle_sensor_messages,
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
        if channel not in by_channel:
            continue
        together = [c for c, h in handlers.items() if h is handler and c in by_channel]
        effects.merge(handler(session, [m for c in together for m in by_channel.pop(c)], ctx))
    if by_channel:  # decode only accepts the contract's channels: this is a bug, not bad input
        raise LookupError(f"no handler registered for {sorted(by_channel)}")
    return effects


__all__ = ["HANDLERS", "Context", "Handler", "apply_batch"]
