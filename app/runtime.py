"""Starting and stopping the product's parts in one process: broker, database, gateway, API."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
from dataclasses import dataclass, field

import uvicorn
from sqlalchemy import Engine

from app.broker_accounts import BrokerFiles, provision_from_database, with_service_credentials
from app.embedded_broker import EmbeddedBroker
from app.wiring import gateway_sweeper, live_source
from core.clock import Clock, SystemClock
from core.config import Settings
from gateway.housekeeping import ensure_housekeeping
from gateway.pipeline import Gateway
from gateway.sweeper import Sweeper
from gateway.webhook_worker import WebhookWorker
from server.api.app import create_app
from storage.db import open_database, session_factory, transaction

log = logging.getLogger(__name__)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    broker: EmbeddedBroker | None = None
    gateway: Gateway | None = None
    sweeper: Sweeper | None = None
    webhooks: WebhookWorker | None = None
    clock: Clock = field(default_factory=SystemClock)
    stop_event: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def prepare(cls, settings: Settings) -> Runtime:
        return cls(settings, open_database(settings.database_url))

    def start_broker(self) -> None:
        """The embedded broker, with accounts provisioned under var/broker for the gateway, the live feed
        and every device in the database (passwords kept across starts); its processes log in with them."""
        if self.settings.embedded_broker:
            files = BrokerFiles(self.settings.broker_accounts_path)
            provisioned = provision_from_database(self.engine, files)
            b = self.settings.broker
            self.broker = EmbeddedBroker(b.host, b.port, files.passwd, files.acl)
            self.broker.start()
            self.settings = with_service_credentials(self.settings, provisioned.passwords)

    def _embedded_credentials(self) -> None:
        """A process without the broker (`patrol api`) on the embedded one logs in with what it provisioned."""
        if self.settings.embedded_broker and self.settings.mqtt_username is None:
            passwords = BrokerFiles(self.settings.broker_accounts_path).read_credentials()
            if passwords:
                self.settings = with_service_credentials(self.settings, passwords)

    def start_gateway(self) -> Gateway:
        """The gateway and, beside it, the sweeper that fires this database's due deadlines
        (several gateways may sweep one PostgreSQL: each deadline still fires once)."""
        self.gateway = Gateway(self.settings, self.engine, clock=self.clock)
        self.gateway.start()
        sessions = session_factory(self.engine)
        with transaction(sessions) as session:
            ensure_housekeeping(session, self.clock.now())
        self.sweeper = gateway_sweeper(self.settings, self.engine, self.gateway, self.clock)
        self.sweeper.start()
        s = self.settings  # notices wait in the outbox; a dead receiver never holds up the gateway
        targets = s.webhook_targets
        self.webhooks = WebhookWorker(sessions, self.clock, targets, s.webhook_group_wait_s, s.webhook_timeout_s)
        self.webhooks.start()
        # What start-up made (modules, ORM mappers, schemas, procedures) lives as long as the process:
        # moved out of the collector's reach, so a full collection no longer walks it all. Those pauses
        # (100-200 ms) were most of the alarm latency's tail under load (bench/alarm_latency.py).
        gc.collect()
        gc.freeze()
        return self.gateway

    def serve_api(self) -> None:
        """Blocks until Ctrl-C / SIGTERM; uvicorn owns the signals while it runs."""
        self._embedded_credentials()
        app = create_app(self.settings, self.engine, live_feed=live_source(self.settings))
        config = uvicorn.Config(
            app,
            host=self.settings.api_host,
            port=self.settings.api_port,
            log_level=self.settings.log_level.lower(),
            ws="websockets-sansio",
            ssl_certfile=self.settings.api_tls_cert,
            ssl_keyfile=self.settings.api_tls_key,
            forwarded_allow_ips=self.settings.api_forwarded_allow_ips,  # the client address behind a proxy
            # Ctrl-C waits at most this long for open requests; live-feed sockets end on their own
            # (server/api/routes/live.py watches their receive side), so nothing should need it.
            timeout_graceful_shutdown=5,
        )
        # uvicorn re-raises the signal it already handled once it has stopped: Ctrl-C as KeyboardInterrupt,
        # SIGTERM by its default action, which would kill the process before `shutdown()` stops the gateway.
        # Both end as KeyboardInterrupt here, so `patrol serve` stops cleanly either way (exit code 0).
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
        try:
            with contextlib.suppress(KeyboardInterrupt):
                uvicorn.Server(config).run()
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)

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
        if self.webhooks:
            self.webhooks.stop()
        if self.sweeper:
            self.sweeper.stop()
        if self.gateway:
            self.gateway.stop()
        if self.broker:
            self.broker.stop()
        self.engine.dispose()
        log.info("stopped")
