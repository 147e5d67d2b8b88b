"""Nothing lost, nobody left without a verdict: 20,000 taps at QoS 1 through a real Mosquitto, the
gateway SIGKILLed five times mid-stream and restarted each time. Every tap is stored exactly once
and every reader got at least one answer for each of its taps (a kill between the commit and the
answers must mean a redelivery and the same answer again, never silence). On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from core.broker_access import GATEWAY_ACCOUNT, device_username
from storage.db import session_factory
from storage.models import InboundMessage, SignIn
from storage.sitefile.schema import SiteFile
from tests.support.accounts import OBSERVER
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import end_gateway_sessions, wait_quiet, wait_until

pytestmark = pytest.mark.integration
TAPS = 20_000
KILL_AT = (2_000, 5_000, 8_000, 11_000, 14_000)  # sign-ins stored when each SIGKILL lands
READERS = [f"rdr-h0{n}" for n in range(1, 7)]


def _start_gateway(broker: MosquittoBroker, db_url: str, log: Path) -> subprocess.Popen[bytes]:
    """The gateway process, logged in with its own account (the client id is the username)."""
    env = {
        **os.environ,
        "PATROL_MQTT_URL": broker.url_for(GATEWAY_ACCOUNT),
        "PATROL_DATABASE_URL": db_url,
        "PATROL_MQTT_CLIENT_ID": GATEWAY_ACCOUNT,
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


def _reached(engine: Engine, count: int) -> bool:
    return _counts(engine)[0] >= count


def _client(broker: MosquittoBroker, username: str, inflight: int = 20) -> mqtt.Client:
    """Logged in as `username`, with that account's own client id (Mosquitto makes the id the username)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv311)
    client.username_pw_set(username, broker.passwords[username])
    client.max_inflight_messages_set(inflight)
    client.connect("127.0.0.1", broker.port)
    return client


class AnswerLog:
    """Every answer the readers were sent, counted per tap id (a reader that never got one for a
    tap would have shown the guard nothing)."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = _client(broker, OBSERVER)
        self.client.on_connect = lambda c, *_: c.subscribe("patrol/v1/liyuan/reader/+/ack", qos=1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.loop_start()
        assert self._ready.wait(10), "answer subscriber could not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        answer_id = str(json.loads(msg.payload)["id"])
        with self._lock:
            self.counts[answer_id] += 1

    def answered(self) -> int:
        with self._lock:
            return len(self.counts)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _publish_all(broker: MosquittoBroker, uids: list[str], done: threading.Event) -> None:
    """The readers in turn, each on its own client and account, as in the field."""
    clients = [_client(broker, device_username("liyuan", reader), inflight=100) for reader in READERS]
    for client in clients:
        client.loop_start()
    infos = []
    for i in range(TAPS):
        payload = f'{{"id":"storm-{i:05d}","ts":1764288311250,"uid":"{uids[i % len(uids)]}"}}'
        reader = i % len(READERS)
        infos.append(clients[reader].publish(f"patrol/v1/liyuan/reader/{READERS[reader]}/tap", payload, qos=1))
    for info in infos:
        info.wait_for_publish(120)
    for client in clients:
        client.loop_stop()
        client.disconnect()
    done.set()


def test_sigkill_storm_stores_every_tap_once_and_answers_every_tap(
    mosquitto: MosquittoBroker, engine: Engine, db_url: str, demo_site: SiteFile, tmp_path: Path
) -> None:
    uids = [loc.tag for loc in demo_site.locations if loc.tag]
    log = tmp_path / "gateway.log"
    end_gateway_sessions(mosquitto, GATEWAY_ACCOUNT)  # the first start begins a session; each restart resumes it
    answers = AnswerLog(mosquitto)
    gw = _start_gateway(mosquitto, db_url, log)
    try:
        wait_until(lambda: "subscribed to" in log.read_text(errors="replace"), timeout=60, what="gateway ready")
        done = threading.Event()
        publisher = threading.Thread(target=_publish_all, args=(mosquitto, uids, done), daemon=True)
        publisher.start()
        for threshold in KILL_AT:
            wait_until(partial(_reached, engine, threshold), timeout=120, what=f"{threshold} sign-ins")
            gw.send_signal(signal.SIGKILL)
            gw.wait(10)
            assert _counts(engine)[0] < TAPS, "each kill must land mid-stream"
            gw = _start_gateway(mosquitto, db_url, log)
        publisher.join(180)
        assert done.is_set(), "publisher did not finish"
        wait_until(lambda: _counts(engine)[0] >= TAPS, timeout=180, what=f"{TAPS} sign-ins")
        wait_until(lambda: answers.answered() >= TAPS, timeout=60, what=f"answers to all {TAPS} taps")
        wait_quiet(answers.answered, what="answers")
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(30) == 0
        assert log.read_text().count("session present: True") >= len(KILL_AT), "each restart resumes the session"
    finally:
        answers.close()
        if gw.poll() is None:
            gw.kill()
            gw.wait(10)
        end_gateway_sessions(mosquitto, GATEWAY_ACCOUNT)  # nothing queued for it reaches the next test
    rows, distinct = _counts(engine)
    assert (rows, distinct) == (TAPS, TAPS)
    with session_factory(engine)() as s:
        ids = set(s.scalars(select(InboundMessage.msg_id).where(InboundMessage.kind == "tap")))
    expected = {f"storm-{i:05d}" for i in range(TAPS)}
    assert ids == expected
    unanswered = expected - set(answers.counts)
    assert not unanswered, f"{len(unanswered)} stored taps never answered, e.g. {sorted(unanswered)[:5]}"
