from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from core.config import Settings
from gateway.pipeline import Gateway
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import Peer, wait_until


def gateway_settings(broker: MosquittoBroker, db_url: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        mqtt_url=broker.url,
        database_url=db_url,
        mqtt_client_id=f"gw-test-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
def gateway(mosquitto: MosquittoBroker, engine: Engine, db_url: str) -> Iterator[Gateway]:
    gw = Gateway(gateway_settings(mosquitto, db_url), engine)
    gw.start()
    wait_until(gw.link.subscribed.is_set, what="gateway subscription")
    yield gw
    gw.stop()


@pytest.fixture
def peer(mosquitto: MosquittoBroker) -> Iterator[Peer]:
    p = Peer(mosquitto.url, subscribe=("patrol/v1/+/reader/+/ack", "patrol/v1/+/out/#"))
    yield p
    p.close()
