"""Who may speak on the broker (issue 6 item 12, and item 2's message size limit), against Mosquitto
started with the shipped deploy/mosquitto/mosquitto.conf rules and against the embedded broker, each
with the accounts `patrol device provision` writes for the demo site.

Mosquitto drops a denied publish from an MQTT 3.1.1 client silently (it still sends the PUBACK), so
"refused" is shown by what never arrives: each test publishes a marker after the bad message, from
the same client, and checks once the marker is through (a broker keeps one client's order).
"""

from __future__ import annotations

import contextlib
import json
import stat
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, func, select

from app.broker_accounts import BrokerFiles
from app.cli import build_parser
from core.broker_access import GATEWAY_ACCOUNT, device_username, parse_acl
from core.config import Settings
from core.contract import MAX_PAYLOAD_BYTES, ack_topic, status_topic, tap_topic
from gateway.lanes import LaneLink
from gateway.pipeline import Gateway
from storage.db import session_factory
from storage.models import InboundMessage, QuarantinedMessage
from storage.sitefile.schema import SiteFile
from tests.integration.conftest import SecuredBroker, ShippedMosquitto, demo_accounts
from tests.support.mqtt import BrokerRefused, Peer, wait_until

pytestmark = pytest.mark.integration

SITE = "liyuan"
READER_A, READER_B = "rdr-h01", "rdr-h02"
OBSERVER = "patrol-gateway-2"  # a second gateway account: reads patrol/v1/# like the gateway


def _tag(site: SiteFile) -> str:
    return next(loc.tag for loc in site.locations if loc.tag)


def _device(broker: SecuredBroker, device: str, subscribe: tuple[str, ...] = ()) -> Peer:
    username = device_username(SITE, device)
    return Peer(broker.url_for(username), subscribe=subscribe, client_id=username)


def _drain_until(peer: Peer, topic: str, marker: str) -> list[tuple[str, dict[str, Any]]]:
    """Everything `peer` received up to and including the message on `topic` whose id is `marker`."""
    seen: list[tuple[str, dict[str, Any]]] = []
    while not any(t == topic and body.get("id") == marker for t, body in seen):
        seen += peer.take(1, timeout=15)
    return seen


def _count(engine: Engine, stmt: Any) -> int:
    with session_factory(engine)() as s:
        return int(s.scalar(stmt) or 0)


def test_anonymous_and_wrong_credentials_are_refused(secured_broker: SecuredBroker) -> None:
    """Issue 6 item 12: no anonymous access in either broker's shipped configuration."""
    with pytest.raises(BrokerRefused):
        Peer(f"mqtt://127.0.0.1:{secured_broker.port}")
    with pytest.raises(BrokerRefused):
        Peer(secured_broker.url_for(device_username(SITE, READER_A), "not-the-password"))
    with pytest.raises(BrokerRefused):
        Peer(secured_broker.url_for("intruder", "guess"))
    ok = _device(secured_broker, READER_A)  # the same device with its own password gets in
    ok.close()


def test_a_device_cannot_tap_as_another_and_nothing_is_stored(
    secured_broker: SecuredBroker, secured_gateway: Gateway, engine: Engine, demo_site: SiteFile
) -> None:
    """Issue 6 item 12: reader B publishing on reader A's tap topic reaches no gateway and is not stored."""
    observer = Peer(secured_broker.url_for(OBSERVER), subscribe=("patrol/v1/#",))
    forger = _device(secured_broker, READER_B, subscribe=(ack_topic(SITE, READER_B),))
    try:
        forged = {"id": "forged-1", "ts": 1764288311250, "uid": _tag(demo_site)}
        forger.publish(tap_topic(SITE, READER_A), forged)
        forger.publish(tap_topic(SITE, READER_B), {**forged, "id": "marker-1"})
        [(_, ack)] = forger.take(1, topic_suffix="/ack")
        assert ack["id"] == "marker-1", "the forger's own tap on its own topic is answered"
        seen = _drain_until(observer, tap_topic(SITE, READER_B), "marker-1")
        assert all(topic != tap_topic(SITE, READER_A) for topic, _ in seen), seen
        assert _count(engine, select(func.count()).where(InboundMessage.msg_id == "forged-1")) == 0
        assert _count(engine, select(func.count()).where(InboundMessage.msg_id == "marker-1")) == 1
        assert _count(engine, select(func.count()).select_from(QuarantinedMessage)) == 0
    finally:
        forger.close()
        observer.close()


def test_a_device_subscribing_to_everything_receives_only_its_own_answers(secured_broker: SecuredBroker) -> None:
    """Issue 6 item 12: `#` from a device yields nothing of others (taps, acks, out/ events, retained status)."""
    other = _device(secured_broker, READER_B)
    gateway = Peer(secured_broker.url_for(OBSERVER))
    other.publish(status_topic(SITE, READER_B), {"ts": 1764288311250, "online": True}, retain=True)
    snoop = _device(secured_broker, READER_A, subscribe=("#", "patrol/v1/#", ack_topic(SITE, READER_A)))
    try:
        assert not snoop.granted[-1].is_failure, "its own answers it may subscribe to"
        other.publish(tap_topic(SITE, READER_B), {"id": "b-1", "ts": 1764288311250, "uid": "04A1B2C3"})
        gateway.publish(ack_topic(SITE, READER_B), {"id": "b-1", "ok": True})
        gateway.publish(f"patrol/v1/{SITE}/out/signins", {"events": []})
        gateway.publish(ack_topic(SITE, READER_A), {"id": "a-1", "ok": True})
        seen = _drain_until(snoop, ack_topic(SITE, READER_A), "a-1")
        assert {topic for topic, _ in seen} == {ack_topic(SITE, READER_A)}, seen
    finally:
        other.publish(status_topic(SITE, READER_B), b"", retain=True)
        for peer in (snoop, gateway, other):
            peer.close()


def test_a_device_connecting_gets_no_retained_message_of_another(secured_broker: SecuredBroker) -> None:
    """Issue 6 item 12: while the gateway holds `patrol/v1/#`, a device that connects (or takes its own
    session back) is sent no other device's retained status. amqtt 0.12 replays on every connect the
    retained messages matching every subscription in the broker, its own or not, unchecked: the embedded
    broker must not."""
    gateway = Peer(secured_broker.url_for(OBSERVER), subscribe=("patrol/v1/#",), client_id=OBSERVER)
    other = _device(secured_broker, READER_B)
    other.publish(status_topic(SITE, READER_B), {"ts": 1764288311250, "online": True}, retain=True)
    snoop = _device(secured_broker, READER_A, subscribe=(ack_topic(SITE, READER_A),))
    try:
        gateway.publish(ack_topic(SITE, READER_A), {"id": "a-2", "ok": True})
        seen = _drain_until(snoop, ack_topic(SITE, READER_A), "a-2")
        assert {topic for topic, _ in seen} == {ack_topic(SITE, READER_A)}, seen
    finally:
        other.publish(status_topic(SITE, READER_B), b"", retain=True)
        for peer in (snoop, gateway, other):
            peer.close()


def test_taking_over_the_gateways_client_id_needs_its_credentials(
    secured_broker: SecuredBroker, secured_gateway: Gateway, demo_site: SiteFile
) -> None:
    """Issue 6 item 12: connecting as client id `patrol-gateway` without the gateway's password fails and the
    real gateway keeps its connection (its session, and the taps queued in it, are not lost)."""
    link = cast(LaneLink, secured_gateway.link).main
    connections = link._generation  # counts the gateway's (re)connections: a takeover would add one
    with pytest.raises(BrokerRefused):
        Peer(f"mqtt://127.0.0.1:{secured_broker.port}", client_id=GATEWAY_ACCOUNT)
    with pytest.raises(BrokerRefused):
        Peer(secured_broker.url_for(GATEWAY_ACCOUNT, "wrong"), client_id=GATEWAY_ACCOUNT)
    # a device's own account: refused (embedded) or given its username as client id instead (Mosquitto)
    with contextlib.suppress(BrokerRefused):
        Peer(secured_broker.url_for(device_username(SITE, READER_B)), client_id=GATEWAY_ACCOUNT).close()
    reader = _device(secured_broker, READER_A, subscribe=(ack_topic(SITE, READER_A),))
    try:
        reader.publish(tap_topic(SITE, READER_A), {"id": "after-1", "ts": 1764288311250, "uid": _tag(demo_site)})
        [(_, ack)] = reader.take(1, topic_suffix="/ack")
        assert ack["id"] == "after-1"
    finally:
        reader.close()
    assert secured_gateway.link.subscribed.is_set()
    assert link._generation == connections, "the gateway was disconnected"


def test_a_payload_over_16_kib_is_dropped_by_the_broker(secured_broker: SecuredBroker) -> None:
    """Issue 6 item 2: Mosquitto's message_size_limit and the embedded broker's equivalent (CONTRACT: ≤ 16 KiB)."""
    observer = Peer(secured_broker.url_for(OBSERVER), subscribe=("patrol/v1/#",))
    reader = _device(secured_broker, READER_A)
    try:
        fits = json.dumps({"id": "fits", "pad": "x" * (MAX_PAYLOAD_BYTES - 100)}).encode()
        too_big = json.dumps({"id": "too-big", "pad": "x" * MAX_PAYLOAD_BYTES}).encode()
        assert len(fits) <= MAX_PAYLOAD_BYTES < len(too_big)
        reader.publish(tap_topic(SITE, READER_A), too_big)
        reader.publish(tap_topic(SITE, READER_A), fits)
        reader.publish(tap_topic(SITE, READER_A), {"id": "marker-2"})
        seen = _drain_until(observer, tap_topic(SITE, READER_A), "marker-2")
        assert [body.get("id") for _, body in seen] == ["fits", "marker-2"]
    finally:
        reader.close()
        observer.close()


def test_provision_command_covers_every_device_and_prints_no_secret(
    db_url: str, demo_site: SiteFile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 6 item 12: `patrol device provision` writes an account per device in the database plus the services,
    a 0600 credentials file, and says where, never what the passwords are."""
    settings = Settings(_env_file=None, database_url=db_url)  # type: ignore[call-arg]
    out = tmp_path / "broker"
    args = build_parser().parse_args(["device", "provision", "--out", str(out), "--gateway", "patrol-gateway"])
    assert args.func(settings, args) == 0
    files = BrokerFiles(out)
    passwords = files.read_credentials()
    expected = {device_username(SITE, d.code) for d in demo_site.devices} | {
        GATEWAY_ACCOUNT,
        "patrol-gateway-slow",
        "patrol-live",
    }
    assert set(passwords) == expected
    assert set(parse_acl(files.acl.read_text())) == expected
    assert stat.S_IMODE(files.credentials.stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    assert str(files.credentials) in printed and "PATROL_MQTT_PASSWORD" in printed
    assert not any(secret in printed for secret in passwords.values())

    args = build_parser().parse_args(["device", "provision", "--out", str(out), "--rotate", "liyuan.rdr-h01"])
    assert args.func(settings, args) == 0
    again = files.read_credentials()
    assert {u for u in expected if again[u] != passwords[u]} == {"liyuan.rdr-h01"}


def test_gateways_of_a_shared_group_each_log_in_with_their_own_account(
    engine: Engine, db_url: str, demo_site: SiteFile
) -> None:
    """Issue 6 item 12 (docs/broker-access.md): with the client id bound to the username, each gateway of a
    shared group has its own account; both receive their share and every tap is answered."""
    broker = ShippedMosquitto(accounts=demo_accounts(demo_site))
    broker.start()
    group = "patrol"
    gateways = [
        Gateway(
            Settings(  # type: ignore[call-arg]
                _env_file=None,
                mqtt_url=broker.url_for(name),
                database_url=db_url,
                mqtt_client_id=name,
                mqtt_shared_group=group,
                batch_max_size=10,
            ),
            engine,
        )
        for name in (GATEWAY_ACCOUNT, OBSERVER)
    ]
    readers = [_device(broker, f"rdr-h0{i}", subscribe=(ack_topic(SITE, f"rdr-h0{i}"),)) for i in range(1, 7)]
    try:
        for gw in gateways:
            gw.start()
            wait_until(gw.link.subscribed.is_set, what="shared subscription")
        taps = 120
        for i in range(taps):
            readers[i % 6].client.publish(
                tap_topic(SITE, f"rdr-h0{1 + i % 6}"),
                json.dumps({"id": f"grp-{i:03d}", "ts": 1764288311250, "uid": _tag(demo_site)}),
                qos=1,
            )
        answered = [ack["id"] for r in readers for _, ack in r.take(taps // 6, timeout=30, topic_suffix="/ack")]
        assert sorted(answered) == [f"grp-{i:03d}" for i in range(taps)]
        assert all(gw.handled > 0 for gw in gateways), [gw.handled for gw in gateways]
    finally:
        for peer in readers:
            peer.close()
        for gw in gateways:
            gw.stop()
        broker.cleanup()
