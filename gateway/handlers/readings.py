"""Telemetry and device events: logged once each; alarm rules will decide their effects here."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.effects import Effects
from gateway.handlers.base import Context, log_new
from gateway.messages import Accepted


def handle_telemetry(session: Session, msgs: list[Accepted], ctx: Context) -> Effects:
    effects = Effects()
    log_new(session, msgs, effects)
    return effects


def handle_event(session: Session, msgs: list[Accepted], ctx: Context) -> Effects:
    effects = Effects()
    log_new(session, msgs, effects)
    return effects
