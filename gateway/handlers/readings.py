"""Telemetry and device events: logged once each; alarm rules will decide their effects here.

A reused id is quarantined by the log insert (`log_new`); a reading's time for the alarm rules is
its `ts`, or its receipt time when the sensor's clock is off (`Logged.times`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.effects import Effects
from gateway.handlers.base import Context, log_new
from gateway.messages import Accepted


def handle_telemetry(session: Session, msgs: list[Accepted], ctx: Context) -> Effects:
    effects = Effects()
    log_new(session, msgs, ctx, effects)
    return effects


def handle_event(session: Session, msgs: list[Accepted], ctx: Context) -> Effects:
    effects = Effects()
    log_new(session, msgs, ctx, effects)
    return effects
