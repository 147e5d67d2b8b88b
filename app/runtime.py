"""Starting and stopping the product's parts in one process: broker, database, gateway, API."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from dataclasses import dataclass, field

import uvicorn
from sqlalchemy import Engine

from app.embedded_broker import EmbeddedBroker
from app.wiring import deadline_handlers, live_source
from core.clock import Clock, SystemClock
from core.config import Settings
from gateway.housekeeping import ensure_housekeeping
from gateway.pipeline import Gateway
from gateway.sweeper import Sweeper
from server.api.app import create_app
from storage.db import open_database, session_factory, transaction

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    broker: EmbeddedBroker | None = None
    gateway: Gateway | None = None
    sweeper: Sweeper | None = None
    clock: Clock = field(default_factory=SystemClock)
    stop_event: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def prepare(cls, settings: Settings) -> Runtime:
        return cls(settings, open_database(settings.database_url))

    def start_broker(self) -> None:
        if self.settings.embedded_broker:
            b = self.settings.broker
            self.broker = EmbeddedBroker(b.host, b.port)
            self.broker.start()

    def start_gateway(self) -> Gateway:
        """The gateway and, beside it, the sweeper that fires this database's due deadlines
        (several gateways may sweep one PostgreSQL: each deadline still fires once)."""
        self.gateway = Gateway(self.settings, self.engine, clock=self.clock)
        self.gateway.start()
        sessions = session_factory(self.engine)
        with transaction(sessions) as session:
            ensure_housekeeping(session, self.clock.now())
        self.sweeper = Sweeper(
            sessions, self.clock, deadline_handlers(self.settings), publish=self.gateway.publish_events
        )
        self.sweeper.start()
        return self.gateway

    def serve_api(self) -> None:
        """Blocks until Ctrl-C / SIGTERM; uvicorn owns the signals while it runs."""
        app = create_app(self.settings, self.engine, live_feed=live_source(self.settings))
        config = uvicorn.Config(
            app,
            host=self.settings.api_host,
            port=self.settings.api_port,
            log_level=self.settings.log_level.lower(),
            ws="websockets-sansio",
        )
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it already handled
            uvicorn.Server(config).run()

    def wait_for_signal(self) -> None:
        """Until SIGINT/SIGTERM, or until the broker refuses our credentials for good."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop_event.set())
        while not self.stop_event.wait(0.5):
            if self.gateway and self.gateway.link.fatal_error:
                log.error("%s", self.gateway.link.fatal_error)
                return

    def shutdown(self) -> None:
        self.stop_event.set()
        if self.sweeper:
            self.sweeper.stop()
        if self.gateway:
            self.gateway.stop()
        if self.broker:
            self.broker.stop()
        self.engine.dispose()
        log.info("stopped")
