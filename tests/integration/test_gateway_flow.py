"""A tap's whole trip through a real Mosquitto and a real database, and bad input on the way.

Runs on SQLite and PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, delete, func, select

from gateway.pipeline import Gateway
from server.auth import Role
from storage.db import session_factory
from storage.models import Device, QuarantinedMessage, SignIn
from storage.sitefile.schema import SiteFile
from tests.support.api import make_client, token_for
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import Peer, wait_quiet, wait_until

pytestmark = pytest.mark.integration
SITE = "liyuan"
READER = "rdr-h01"
TAP_TOPIC = f"patrol/v1/{SITE}/reader/{READER}/tap"


def _tag(site: SiteFile, code: str = "B1-F01-LOBBY") -> str:
    return next(loc.tag for loc in site.locations if loc.code == code and loc.tag)


def _count(engine: Engine, stmt: object) -> int:
    with session_factory(engine)() as s:
        return int(s.scalar(stmt) or 0)  # type: ignore[call-overload]


def _mosquitto_pub(broker: MosquittoBroker, topic: str, payload: str) -> None:
    exe = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
    subprocess.run(
        [exe, "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", topic, "-m", payload], check=True, timeout=10
    )


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_tap_from_third_party_client_is_acked_and_stored_once(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway, peer: Peer, demo_site: SiteFile
) -> None:
    tap = json.dumps({"id": "r1-000123", "ts": "2026-11-28T08:05:11.250+08:00", "uid": _tag(demo_site)})
    for _ in range(3):
        _mosquitto_pub(mosquitto, TAP_TOPIC, tap)
    acks = [body for _, body in peer.take(3, topic_suffix=f"/{READER}/ack")]
    assert all(a == acks[0] for a in acks), "a re-sent tap gets the same verdict"
    assert acks[0]["id"] == "r1-000123" and acks[0]["ok"] is True
    assert acks[0]["checkpoint"] == "1栋 1F 大堂" and acks[0]["message"] == {"zh": "签到成功", "en": "Signed in"}
    wait_until(lambda: _count(engine, select(func.count()).select_from(SignIn)) >= 1, what="sign-in")
    assert wait_quiet(lambda: _count(engine, select(func.count()).select_from(SignIn)), what="sign-ins") == 1
    [(_, batch)] = peer.take(1, topic_suffix="/out/signins")
    [event] = batch["items"]
    assert (batch["type"], event["type"]) == ("signins", "signin")
    assert event["checkpoint"] == "B1-F01-LOBBY" and event["guard"] == "G001" and event["device"] == READER

    client = make_client(engine)
    headers = token_for(engine, client, Role.CONTROL_ROOM)
    items = client.get("/api/v1/signins", params={"site": SITE}, headers=headers).json()["items"]
    assert [(i["message_id"], i["checkpoint"], i["ok"]) for i in items] == [("r1-000123", "B1-F01-LOBBY", True)]


def test_unknown_tag_gets_a_red_answer(engine: Engine, gateway: Gateway, peer: Peer) -> None:
    peer.publish(TAP_TOPIC, {"id": "r1-9", "ts": 1764288311250, "uid": "04FFFFFFFFFFFF"})
    [(_, ack)] = peer.take(1, topic_suffix="/ack")
    assert (ack["ok"], ack["reason"], ack["message"]["en"]) == (False, "unknown_tag", "Unknown tag")

    def refused() -> int:
        return _count(engine, select(func.count()).select_from(SignIn).where(SignIn.ok.is_(False)))

    wait_until(lambda: refused() >= 1, what="refused sign-in recorded")
    assert wait_quiet(refused, what="refused sign-ins") == 1


BAD_INPUTS = [
    # (topic, payload, reason, answered on the reader's ack topic)
    (TAP_TOPIC, b"{oops", "bad_json", True),
    (TAP_TOPIC, json.dumps({"id": "bad-ts", "ts": "noon", "uid": "04A1B2C3D4E5F6"}).encode(), "bad_schema", True),
    (
        TAP_TOPIC,
        json.dumps({"id": "big", "ts": 1, "uid": "04A1B2C3D4E5F6", "pad": "x" * 17_000}).encode(),
        "too_large",
        True,
    ),
    (
        f"patrol/v1/{SITE}/reader/ghost-reader/tap",
        json.dumps({"id": "g1", "ts": 1764288311250, "uid": "04A1B2C3D4E5F6"}).encode(),
        "unknown_device",
        True,
    ),
    (
        f"patrol/v1/{SITE}/sensor/gas-b1-shop101/telemetry",
        json.dumps({"id": "g2", "ts": 1764288311250, "kind": "gas", "values": {"ppm": 3}}).encode(),
        "bad_schema",
        False,
    ),
    (f"patrol/v1/{SITE}/reader/{READER}/tapz", b"{}", "unknown_topic", False),
    (TAP_TOPIC, b'{"id": "deep", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "bad_json", True),
    (TAP_TOPIC, b'{"id": "\\ud800x", "ts": 1764288311250, "uid": "04A1B2C3D4E5F6"}', "bad_schema", True),
]


def test_bad_input_is_kept_counted_answered_and_the_gateway_goes_on(
    engine: Engine, gateway: Gateway, peer: Peer, demo_site: SiteFile
) -> None:
    before = {reason: _metric("patrol_messages_rejected_total", reason=reason) for _, _, reason, _ in BAD_INPUTS}
    for topic, payload, _, _ in BAD_INPUTS:
        peer.publish(topic, payload)
    peer.publish(TAP_TOPIC, {"id": "after-bad", "ts": 1764288311250, "uid": _tag(demo_site)})

    answered = sum(1 for *_, a in BAD_INPUTS if a)
    acks = [body for _, body in peer.take(answered + 1, topic_suffix="/ack")]
    good = [a for a in acks if a.get("id") == "after-bad"]
    assert good and good[0]["ok"] is True, json.dumps(acks)
    refused = sorted(a["reason"] for a in acks if a.get("id") != "after-bad")
    assert refused == sorted(r for _, _, r, a in BAD_INPUTS if a)
    assert all(a["ok"] is False for a in acks if a.get("id") != "after-bad")

    with session_factory(engine)() as s:
        kept = s.scalars(select(QuarantinedMessage).order_by(QuarantinedMessage.id)).all()
    assert [(q.topic, q.payload, q.reason) for q in kept] == [(t, p, r) for t, p, r, _ in BAD_INPUTS]
    for reason, count in before.items():
        expected = sum(1 for *_, r, _ in BAD_INPUTS if r == reason)
        assert _metric("patrol_messages_rejected_total", reason=reason) - count == expected, reason

    client = make_client(engine)
    headers = token_for(engine, client, Role.CONTROL_ROOM)
    listed = client.get("/api/v1/quarantine", headers=headers).json()["items"]
    assert {i["reason"] for i in listed} == {r for *_, r, _ in BAD_INPUTS}
    text = client.get("/metrics", headers=headers).text
    assert 'patrol_messages_rejected_total{reason="too_large"}' in text
    assert "patrol_commit_seconds_bucket" in text and "patrol_batch_size_bucket" in text


def test_device_status_and_last_will(mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway) -> None:
    topic = f"patrol/v1/{SITE}/device/{READER}/status"
    exe = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
    device = subprocess.Popen(
        [
            exe,
            "-h",
            "127.0.0.1",
            "-p",
            str(mosquitto.port),
            "-t",
            "nothing/here",
            "-i",
            "reader-r1",
            "--will-topic",
            topic,
            "--will-payload",
            '{"online": false}',
            "--will-qos",
            "1",
            "--will-retain",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        now = datetime.now(UTC).isoformat()
        online = json.dumps({"ts": now, "online": True, "battery_pct": 87, "rssi": -61, "fw": "1.4.2"})
        _mosquitto_pub(mosquitto, topic, online)

        def status() -> tuple[object, ...]:
            with session_factory(engine)() as s:
                d = s.scalars(select(Device).where(Device.code == READER)).one()
                return (d.online, d.battery_pct, d.firmware)

        wait_until(lambda: status() == (True, 87, "1.4.2"), what="online status")
    finally:
        device.kill()  # no DISCONNECT: the broker publishes the device's Last Will
        device.wait()
    wait_until(lambda: status() == (False, 87, "1.4.2"), what="Last Will marks the reader offline")
    _mosquitto_pub(mosquitto, topic, "")  # clear the retained Will for later tests


def test_older_status_never_hides_a_newer_one(mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway) -> None:
    topic = f"patrol/v1/{SITE}/device/rdr-h02/status"
    _mosquitto_pub(mosquitto, topic, json.dumps({"ts": "2026-11-28T10:00:00+08:00", "online": True, "battery_pct": 50}))
    _mosquitto_pub(
        mosquitto, topic, json.dumps({"ts": "2026-11-28T09:00:00+08:00", "online": False, "battery_pct": 90})
    )
    _mosquitto_pub(mosquitto, f"patrol/v1/{SITE}/device/rdr-h03/status", json.dumps({"online": True}))

    def battery(code: str) -> tuple[object, object]:
        with session_factory(engine)() as s:
            d = s.scalars(select(Device).where(Device.code == code)).one()
            return d.online, d.battery_pct

    wait_until(lambda: battery("rdr-h03") == (True, None), what="later status processed")
    assert battery("rdr-h02") == (True, 50)


def test_a_message_the_database_refuses_is_isolated_and_the_rest_of_its_batch_lands(
    engine: Engine, gateway: Gateway, peer: Peer, demo_site: SiteFile
) -> None:
    """The gateway's directory still knows rdr-h05, the database no longer does (a stale cache):
    its tap breaks the batch's foreign key. That one is quarantined as internal_error and answered;
    the good taps batched with it are committed."""
    with session_factory(engine).begin() as s:
        s.execute(delete(Device).where(Device.code == "rdr-h05"))
    tag = _tag(demo_site)
    for i in range(20):
        reader = "rdr-h05" if i == 10 else READER
        peer.publish(f"patrol/v1/{SITE}/reader/{reader}/tap", {"id": f"iso-{i}", "ts": 1764288311250, "uid": tag})
    acks = {body["id"]: body for _, body in peer.take(20, topic_suffix="/ack")}
    assert acks["iso-10"]["ok"] is False and acks["iso-10"]["reason"] == "internal_error"
    assert all(acks[f"iso-{i}"]["ok"] for i in range(20) if i != 10)
    assert _count(engine, select(func.count()).select_from(SignIn)) == 19
    with session_factory(engine)() as s:
        [poison] = s.scalars(select(QuarantinedMessage)).all()
    assert (poison.reason, poison.device_code) == ("internal_error", "rdr-h05")
    assert "IntegrityError" in poison.detail or "ForeignKey" in poison.detail
