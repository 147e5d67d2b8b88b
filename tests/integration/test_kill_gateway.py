"""Nothing lost: 5,000 taps at QoS 1 through a real Mosquitto, the gateway SIGKILLed mid-stream and
restarted; exactly 5,000 sign-ins, none twice. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from storage.db import session_factory
from storage.models import InboundMessage, SignIn
from storage.sitefile.schema import SiteFile
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import wait_until

pytestmark = pytest.mark.integration
TAPS = 5000


def _start_gateway(broker: MosquittoBroker, db_url: str, client_id: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PATROL_MQTT_URL": broker.url,
        "PATROL_DATABASE_URL": db_url,
        "PATROL_MQTT_CLIENT_ID": client_id,
        "PATROL_LOG_LEVEL": "INFO",
    }
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "app.cli", "gateway"], env=env, stdout=out, stderr=out)


def _counts(engine: Engine) -> tuple[int, int]:
    with session_factory(engine)() as s:
        rows = s.scalar(select(func.count()).select_from(SignIn)) or 0
        distinct = (
            s.scalar(
                select(func.count(func.distinct(InboundMessage.msg_id))).join(
                    SignIn, SignIn.message_id == InboundMessage.id
                )
            )
            or 0
        )
        return int(rows), int(distinct)


def _publish_all(broker: MosquittoBroker, uids: list[str], done: threading.Event) -> None:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"kill-pub-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv311
    )
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    infos = []
    for i in range(TAPS):
        reader = f"rdr-h0{1 + i % 6}"
        payload = f'{{"id":"kill-{i:05d}","ts":1764288311250,"uid":"{uids[i % len(uids)]}"}}'
        infos.append(client.publish(f"patrol/v1/liyuan/reader/{reader}/tap", payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()
    done.set()


def test_sigkill_during_stream_loses_nothing_and_doubles_nothing(
    mosquitto: MosquittoBroker, engine: Engine, db_url: str, demo_site: SiteFile, tmp_path: Path
) -> None:
    uids = [loc.tag for loc in demo_site.locations if loc.tag]
    client_id = f"gw-kill-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "gateway.log"
    gw = _start_gateway(mosquitto, db_url, client_id, log)
    try:
        wait_until(lambda: "subscribed to" in log.read_text(errors="replace"), timeout=60, what="gateway ready")
        done = threading.Event()
        publisher = threading.Thread(target=_publish_all, args=(mosquitto, uids, done), daemon=True)
        publisher.start()
        wait_until(lambda: _counts(engine)[0] >= 500, timeout=60, what="500 sign-ins before the kill")
        gw.send_signal(signal.SIGKILL)
        gw.wait(10)
        killed_at = _counts(engine)[0]
        assert killed_at < TAPS, "the kill must land mid-stream"
        gw = _start_gateway(mosquitto, db_url, client_id, log)
        publisher.join(120)
        assert done.is_set(), "publisher did not finish"
        wait_until(lambda: _counts(engine)[0] >= TAPS, timeout=120, what=f"{TAPS} sign-ins")
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(30) == 0
        assert "session present: True" in log.read_text(), "the restarted gateway resumes its broker session"
    finally:
        if gw.poll() is None:
            gw.kill()
    rows, distinct = _counts(engine)
    assert (rows, distinct) == (TAPS, TAPS)
    with session_factory(engine)() as s:
        ids = set(s.scalars(select(InboundMessage.msg_id).where(InboundMessage.kind == "tap")))
    assert ids == {f"kill-{i:05d}" for i in range(TAPS)}
