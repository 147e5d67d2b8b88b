from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import Engine

from app.broker_accounts import BrokerFiles, provision
from app.embedded_broker import EmbeddedBroker
from core.broker_access import GATEWAY_ACCOUNT, Account
from core.config import Settings
from gateway.pipeline import Gateway
from storage.sitefile.schema import SiteFile
from tests.support.accounts import demo_accounts
from tests.support.mosquitto import MosquittoBroker, credentialed_url, free_port
from tests.support.mqtt import SitePeers, end_gateway_sessions, wait_until

__all__ = ["SecuredBroker", "ShippedMosquitto", "demo_accounts"]


def gateway_settings(
    broker: MosquittoBroker | EmbeddedTestBroker, db_url: str, username: str = GATEWAY_ACCOUNT
) -> Settings:
    """The gateway logged in with a gateway account; the client id is the username (Mosquitto makes it
    so), over the MQTT version the broker speaks (the embedded one: 3.1.1 only)."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        mqtt_url=broker.url_for(username),
        database_url=db_url,
        mqtt_client_id=username,
        mqtt_protocol=getattr(broker, "protocol", "5"),
    )


@pytest.fixture
def gateway(mosquitto: MosquittoBroker, engine: Engine, db_url: str) -> Iterator[Gateway]:
    """The gateway under test, logged in as `patrol-gateway` with a fresh broker session (see `end_session`)."""
    end_gateway_sessions(mosquitto, GATEWAY_ACCOUNT)
    gw = Gateway(gateway_settings(mosquitto, db_url), engine)
    gw.start()
    wait_until(gw.link.subscribed.is_set, what="gateway subscription")
    yield gw
    gw.stop()
    end_gateway_sessions(mosquitto, GATEWAY_ACCOUNT)


@pytest.fixture
def peer(mosquitto: MosquittoBroker) -> Iterator[SitePeers]:
    """Publishes as the devices (each with its own account) and reads the answers and out/ events."""
    p = SitePeers(mosquitto, subscribe=("patrol/v1/+/reader/+/ack", "patrol/v1/+/out/#"))
    yield p
    p.close()


class EmbeddedTestBroker:
    """The embedded broker (amqtt) on a free port with provisioned accounts, shaped like `MosquittoBroker`."""

    protocol: Literal["5", "3.1.1"] = "3.1.1"

    def __init__(self, accounts: list[Account]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="patrol-embedded-"))
        files = BrokerFiles(self.dir)
        self.passwords = provision(files, accounts).passwords
        self.rules = {a.username: a.rules for a in accounts}
        self.port = free_port()
        self.broker = EmbeddedBroker("127.0.0.1", self.port, files.passwd, files.acl)

    def url_for(self, username: str, password: str | None = None) -> str:
        return credentialed_url(self.port, username, self.passwords[username] if password is None else password)

    def start(self) -> None:
        self.broker.start()

    def cleanup(self) -> None:
        self.broker.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ShippedMosquitto(MosquittoBroker):
    protocol: Literal["5", "3.1.1"] = "5"


SecuredBroker = ShippedMosquitto | EmbeddedTestBroker


@pytest.fixture(params=["mosquitto", "embedded"])
def secured_broker(request: pytest.FixtureRequest, demo_site: SiteFile) -> Iterator[SecuredBroker]:
    """A broker that admits only provisioned accounts: Mosquitto with deploy/mosquitto/mosquitto.conf's
    rules, or the embedded broker; `url_for(username)` hands out a credentialed URL."""
    accounts = demo_accounts(demo_site)
    broker: SecuredBroker = (
        ShippedMosquitto(accounts=accounts) if request.param == "mosquitto" else EmbeddedTestBroker(accounts)
    )
    broker.start()
    yield broker
    broker.cleanup()


@pytest.fixture
def secured_gateway(secured_broker: SecuredBroker, engine: Engine, db_url: str) -> Iterator[Gateway]:
    """The gateway logged in with its own account and client id on `secured_broker`."""
    gw = Gateway(gateway_settings(secured_broker, db_url), engine)
    gw.start()
    wait_until(gw.link.subscribed.is_set, what="gateway subscription")
    yield gw
    gw.stop()
