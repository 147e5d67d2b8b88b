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
from tests.support.mqtt import Peer, wait_until

pytestmark = pytest.mark.integration


def test_gateway_reconnects_after_a_broker_restart(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway, demo_site: SiteFile
) -> None:
    mosquitto.stop()
    wait_until(lambda: not gateway.link.subscribed.is_set(), what="gateway notices the broker is gone")
    mosquitto.start()
    wait_until(gateway.link.subscribed.is_set, timeout=30, what="gateway reconnects and subscribes")
    peer = Peer(mosquitto.url, subscribe=("patrol/v1/+/reader/+/ack",))
    try:
        tag = next(loc.tag for loc in demo_site.locations if loc.tag)
        peer.publish("patrol/v1/liyuan/reader/rdr-h01/tap", {"id": "after-restart", "ts": 1764288311250, "uid": tag})
        [(_, ack)] = peer.take(1, timeout=20, topic_suffix="/ack")
        assert (ack["id"], ack["ok"]) == ("after-restart", True)
    finally:
        peer.close()


def test_refused_credentials_stop_the_gateway_with_a_clear_message(db_url: str, engine: Engine) -> None:
    broker = MosquittoBroker(allow_anonymous=False)
    broker.start()
    try:
        env = {
            **os.environ,
            "PATROL_MQTT_URL": f"mqtt://intruder:wrong@127.0.0.1:{broker.port}",
            "PATROL_DATABASE_URL": db_url,
        }
        out = subprocess.run(
            [sys.executable, "-m", "app.cli", "gateway"], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        broker.cleanup()
    assert out.returncode == 2
    assert "check PATROL_MQTT_URL credentials" in out.stderr
