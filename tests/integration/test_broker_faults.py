"""The gateway owns its broker connection: it rides out a broker restart and stops on refused credentials."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import Engine

from gateway.pipeline import Gateway
from storage.sitefile.schema import SiteFile
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import SitePeers, wait_until

pytestmark = pytest.mark.integration


def test_gateway_reconnects_after_a_broker_restart(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway, demo_site: SiteFile
) -> None:
    mosquitto.stop()
    wait_until(lambda: not gateway.link.subscribed.is_set(), what="gateway notices the broker is gone")
    mosquitto.start()
    wait_until(gateway.link.subscribed.is_set, timeout=30, what="gateway reconnects and subscribes")
    peer = SitePeers(mosquitto, subscribe=("patrol/v1/+/reader/+/ack",))
    try:
        tag = next(loc.tag for loc in demo_site.locations if loc.tag)
        peer.publish("patrol/v1/liyuan/reader/rdr-h01/tap", {"id": "after-restart", "ts": 1764288311250, "uid": tag})
        [(_, ack)] = peer.take(1, timeout=20, topic_suffix="/ack")
        assert (ack["id"], ack["ok"]) == ("after-restart", True)
    finally:
        peer.close()


@pytest.mark.parametrize("login", ["intruder:wrong", "patrol-gateway:wrong"])
def test_refused_credentials_stop_the_gateway_with_a_clear_message(
    mosquitto: MosquittoBroker, db_url: str, engine: Engine, login: str
) -> None:
    """An unknown account, and the gateway's own with a wrong password (after a rotation, say)."""
    username, password = login.split(":")
    env = {**os.environ, "PATROL_MQTT_URL": mosquitto.url_for(username, password), "PATROL_DATABASE_URL": db_url}
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "gateway"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "check PATROL_MQTT_URL credentials" in out.stderr
