"""How the edges are joined in one process: the HTTP edge's live hub fed by the MQTT edge, and
which deadline kinds this process's sweeper knows how to fire."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine

from core.clock import Clock
from core.config import Settings
from core.deadlines import DeadlineHandler
from gateway.housekeeping import housekeeping_handlers
from gateway.incident_deadlines import incident_handlers
from gateway.incidents import Incidents, incidents_from_settings
from gateway.live_source import LiveSource
from gateway.patrol_deadlines import patrol_handlers
from gateway.pipeline import Gateway
from gateway.sweeper import Sweeper
from server.live import FeedSource, LiveHub
from storage.db import session_factory


def live_source(settings: Settings) -> Callable[[LiveHub], FeedSource]:
    """The live feed's source: the broker's out/ topics, validated, into the API's hub."""

    # its own broker account (read out/ only) when one is set, so the API cannot speak for the gateway
    feed_settings = settings
    if settings.mqtt_live_username is not None:
        live = {"mqtt_username": settings.mqtt_live_username, "mqtt_password": settings.mqtt_live_password}
        feed_settings = settings.model_copy(update=live)

    def build(hub: LiveHub) -> FeedSource:
        return LiveSource(feed_settings, hub.publish_threadsafe)

    return build


def deadline_handlers(settings: Settings, incidents: Incidents | None = None) -> dict[str, DeadlineHandler]:
    """Every deadline kind and its handler: housekeeping, alarm rules, silence, escalation, and
    out/ events decided by the API, and patrol rounds (generation, missed checkpoints)."""
    handlers = housekeeping_handlers(
        settings.telemetry_retention_days, quarantine_days=settings.quarantine_retention_days
    )
    incidents = incidents or incidents_from_settings(settings)
    patrol = patrol_handlers(incidents.env, timedelta(hours=settings.round_lead_h))
    return {**handlers, **incident_handlers(incidents), **patrol}


def gateway_sweeper(settings: Settings, engine: Engine, gateway: Gateway, clock: Clock) -> Sweeper:
    """The deadline engine beside a gateway: it fires this database's due deadlines (escalations, rounds,
    out/ events the API decided) and publishes through the gateway's link. Not started."""
    handlers = deadline_handlers(settings, gateway.incidents)
    return Sweeper(session_factory(engine), clock, handlers, publish=gateway.publish_events)
