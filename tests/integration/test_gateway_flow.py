"""A tap's whole trip through a real Mosquitto and a real database, and bad input on the way.

Mosquitto runs with the shipped rules: every device logs in with its own account (the `peer` fixture
publishes as the device whose topic it is; `mosquitto_pub` gets `-u`/`-P`). Runs on SQLite and
PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, delete, func, select

from core.config import Settings
from gateway.pipeline import Gateway
from server.auth import Role
from storage.db import session_factory
from storage.models import Device, QuarantinedMessage, SignIn
from storage.quarantine import KEEP_BYTES
from storage.sitefile.schema import SiteFile
from tests.support.accounts import publisher_of
from tests.support.api import make_client, token_for
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import Peer, SitePeers, wait_quiet, wait_until

pytestmark = pytest.mark.integration
SITE = "liyuan"
READER = "rdr-h01"
TAP_TOPIC = f"patrol/v1/{SITE}/reader/{READER}/tap"


def _tag(site: SiteFile, code: str = "B1-F01-LOBBY") -> str:
    return next(loc.tag for loc in site.locations if loc.code == code and loc.tag)


def _count(engine: Engine, stmt: object) -> int:
    with session_factory(engine)() as s:
        return int(s.scalar(stmt) or 0)  # type: ignore[call-overload]


MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"


def _login(broker: MosquittoBroker, topic: str) -> list[str]:
    """mosquitto_pub's login as the device whose topic it is (its own account, as in the field)."""
    username = publisher_of(topic, broker.rules)
    assert username is not None, f"no device account may publish on {topic}"
    return broker.cli_login(username)


def _mosquitto_pub(broker: MosquittoBroker, topic: str, payload: str) -> None:
    cmd = [MOSQUITTO_PUB, *_login(broker, topic), "-q", "1", "-t", topic, "-m", payload]
    subprocess.run(cmd, check=True, timeout=10)


def _clear_retained(broker: MosquittoBroker, topic: str) -> None:
    """An empty retained message (-r -n) deletes the retained one; a plain empty one would not."""
    subprocess.run([MOSQUITTO_PUB, *_login(broker, topic), "-q", "1", "-t", topic, "-r", "-n"], check=True, timeout=10)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_tap_from_third_party_client_is_acked_and_stored_once(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway, peer: SitePeers, demo_site: SiteFile
) -> None:
    tap = json.dumps({"id": "r1-000123", "ts": datetime.now(UTC).isoformat(), "uid": _tag(demo_site)})
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


def test_unknown_tag_gets_a_red_answer(engine: Engine, gateway: Gateway, peer: SitePeers) -> None:
    peer.publish(TAP_TOPIC, {"id": "r1-9", "ts": int(datetime.now(UTC).timestamp() * 1000), "uid": "04FFFFFFFFFFFF"})
    [(_, ack)] = peer.take(1, topic_suffix="/ack")
    assert (ack["ok"], ack["reason"], ack["message"]["en"]) == (False, "unknown_tag", "Unknown tag")

    def refused() -> int:
        return _count(engine, select(func.count()).select_from(SignIn).where(SignIn.ok.is_(False)))

    wait_until(lambda: refused() >= 1, what="refused sign-in recorded")
    assert wait_quiet(refused, what="refused sign-ins") == 1


BAD_INPUTS = [
    # (topic, payload, reason, answered on the reader's ack topic)
    (TAP_TOPIC, b"{oops", "bad_json", True),
    (TAP_TOPIC, json.dumps({"id": "bad-ts", "ts": "noon", "uid": "04A1B2C3D4E5F6"}).encode(), "bad_timestamp", True),
    (TAP_TOPIC, json.dumps({"id": "ts-s", "ts": 1764288311, "uid": "04A1B2C3D4E5F6"}).encode(), "bad_timestamp", True),
    (
        f"patrol/v1/{SITE}/sensor/leak-b1-pump/telemetry",
        json.dumps({"id": "l1", "ts": 1764288311250, "kind": "gas", "values": {"lel_pct": 30}}).encode(),
        "kind_mismatch",
        False,
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
# No device account may publish these (a device the broker does not know, a channel the contract lacks):
# the shipped ACL drops them, and the gateway meets them only on a broker without that ACL.
OUTSIDE_THE_ACL = {f"patrol/v1/{SITE}/reader/ghost-reader/tap", f"patrol/v1/{SITE}/reader/{READER}/tapz"}
# Over 16 KiB: the shipped broker drops it (tests/integration/test_broker_access.py), so the gateway's own
# limit is shown on a broker without that limit (test_a_payload_over_16_kib_...).
TOO_LARGE = json.dumps({"id": "big", "ts": 1, "uid": "04A1B2C3D4E5F6", "pad": "x" * 17_000}).encode()


def test_bad_input_is_kept_counted_answered_and_the_gateway_goes_on(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway, peer: SitePeers, demo_site: SiteFile
) -> None:
    """Each from the device whose topic it is, with its own account; what the ACL would stop, unrestricted."""
    assert all(publisher_of(topic, mosquitto.rules) is None for topic in OUTSIDE_THE_ACL)
    before = {reason: _metric("patrol_messages_rejected_total", reason=reason) for _, _, reason, _ in BAD_INPUTS}
    for topic, payload, _, _ in BAD_INPUTS:
        if topic in OUTSIDE_THE_ACL:
            peer.publish_unrestricted(topic, payload)
        else:
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
    # in any order (the inbox serves devices in turn), each payload kept up to its bounded prefix
    assert sorted((q.topic, q.payload, q.reason) for q in kept) == sorted(
        (t, p[:KEEP_BYTES], r) for t, p, r, _ in BAD_INPUTS
    )
    for reason, count in before.items():
        expected = sum(1 for *_, r, _ in BAD_INPUTS if r == reason)
        assert _metric("patrol_messages_rejected_total", reason=reason) - count == expected, reason

    client = make_client(engine)
    headers = token_for(engine, client, Role.CONTROL_ROOM)
    listed = client.get("/api/v1/quarantine", headers=headers).json()["items"]
    assert {i["reason"] for i in listed} == {r for *_, r, _ in BAD_INPUTS}
    text = client.get("/metrics", headers=headers).text
    assert 'patrol_messages_rejected_total{reason="kind_mismatch"}' in text
    assert "patrol_commit_seconds_bucket" in text and "patrol_batch_size_bucket" in text


@pytest.fixture
def open_broker() -> Iterator[MosquittoBroker]:
    """A broker without the shipped rules (anonymous, no 16 KiB limit), as a site's own broker may be."""
    broker = MosquittoBroker()
    broker.start()
    yield broker
    broker.cleanup()


def test_a_payload_over_16_kib_on_a_broker_without_the_limit_is_kept_answered_and_counted(
    open_broker: MosquittoBroker, engine: Engine, db_url: str
) -> None:
    """CONTRACT: payloads are at most 16 KiB. The shipped broker drops a larger one; where the broker
    lets it through, the gateway refuses it itself: answered too_large, its prefix kept, counted."""
    settings = Settings(_env_file=None, mqtt_url=open_broker.url, database_url=db_url)  # type: ignore[call-arg]
    gw = Gateway(settings, engine)
    gw.start()
    reader = Peer(open_broker.url, subscribe=(f"patrol/v1/{SITE}/reader/+/ack",))
    try:
        wait_until(gw.link.subscribed.is_set, what="gateway subscription")
        before = _metric("patrol_messages_rejected_total", reason="too_large")
        reader.publish(TAP_TOPIC, TOO_LARGE)
        [(_, ack)] = reader.take(1, topic_suffix=f"/{READER}/ack")
        assert (ack["ok"], ack["reason"]) == (False, "too_large")
        with session_factory(engine)() as s:
            kept = s.scalars(select(QuarantinedMessage)).all()
        assert [(q.topic, q.payload, q.reason) for q in kept] == [(TAP_TOPIC, TOO_LARGE[:KEEP_BYTES], "too_large")]
        assert _metric("patrol_messages_rejected_total", reason="too_large") - before == 1
    finally:
        reader.close()
        gw.stop()
    client = make_client(engine)
    text = client.get("/metrics", headers=token_for(engine, client, Role.CONTROL_ROOM)).text
    assert 'patrol_messages_rejected_total{reason="too_large"}' in text


def test_device_status_and_last_will(mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway) -> None:
    """One connection of the reader's own (its account; a second login would take this one over): it sends
    its online status, then dies without DISCONNECT and the broker publishes its Last Will."""
    topic = f"patrol/v1/{SITE}/device/{READER}/status"
    device = subprocess.Popen(
        [
            MOSQUITTO_PUB,
            *_login(mosquitto, topic),
            "-q",
            "1",
            "-t",
            topic,
            "-l",  # one message per line of stdin, on one connection
            "--will-topic",
            topic,
            "--will-payload",
            '{"online": false}',
            "--will-qos",
            "1",
            "--will-retain",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert device.stdin is not None
    try:
        now = datetime.now(UTC).isoformat()
        online = json.dumps({"ts": now, "online": True, "battery_pct": 87, "rssi": -61, "fw": "1.4.2"})
        device.stdin.write(online.encode() + b"\n")
        device.stdin.flush()

        def status() -> tuple[object, ...]:
            with session_factory(engine)() as s:
                d = s.scalars(select(Device).where(Device.code == READER)).one()
                return (d.online, d.battery_pct, d.firmware)

        wait_until(lambda: status() == (True, 87, "1.4.2"), what="online status")
    finally:
        device.kill()  # no DISCONNECT: the broker publishes the device's Last Will
        device.wait()
        device.stdin.close()
    wait_until(lambda: status() == (False, 87, "1.4.2"), what="Last Will marks the reader offline")
    _clear_retained(mosquitto, topic)  # so the next test's gateway is not handed this Will


def test_older_status_never_hides_a_newer_one(mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway) -> None:
    topic = f"patrol/v1/{SITE}/device/rdr-h02/status"
    newer = datetime.now(UTC) - timedelta(minutes=1)  # both within the device-clock window of receipt time
    older = newer - timedelta(hours=1)
    _mosquitto_pub(mosquitto, topic, json.dumps({"ts": newer.isoformat(), "online": True, "battery_pct": 50}))
    _mosquitto_pub(mosquitto, topic, json.dumps({"ts": older.isoformat(), "online": False, "battery_pct": 90}))
    _mosquitto_pub(mosquitto, f"patrol/v1/{SITE}/device/rdr-h03/status", json.dumps({"online": True}))

    def battery(code: str) -> tuple[object, object]:
        with session_factory(engine)() as s:
            d = s.scalars(select(Device).where(Device.code == code)).one()
            return d.online, d.battery_pct

    wait_until(lambda: battery("rdr-h03") == (True, None), what="later status processed")
    assert battery("rdr-h02") == (True, 50)


def test_a_message_the_database_refuses_is_isolated_and_the_rest_of_its_batch_lands(
    engine: Engine, gateway: Gateway, peer: SitePeers, demo_site: SiteFile
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
    acks = peer.answers([f"iso-{i}" for i in range(20)])
    assert acks["iso-10"]["ok"] is False and acks["iso-10"]["reason"] == "internal_error"
    assert all(acks[f"iso-{i}"]["ok"] for i in range(20) if i != 10)
    assert _count(engine, select(func.count()).select_from(SignIn)) == 19
    with session_factory(engine)() as s:
        [poison] = s.scalars(select(QuarantinedMessage)).all()
    assert (poison.reason, poison.device_code) == ("internal_error", "rdr-h05")
    assert "IntegrityError" in poison.detail or "ForeignKey" in poison.detail


def test_a_reused_message_id_is_kept_counted_and_answered_as_a_conflict(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway, peer: SitePeers, demo_site: SiteFile
) -> None:
    """Issue 6 item 5, end to end from a third-party client: a reader whose counter restarted after
    a reboot sends id 000001 again for another checkpoint. It used to be answered with the old
    verdict naming the old checkpoint, and no sign-in appeared. Now: answered `id_conflict` (its
    redelivery too), kept once in the quarantine, counted; the first tap's sign-in is untouched."""
    before = _metric("patrol_messages_rejected_total", reason="id_conflict")
    now = datetime.now(UTC).isoformat()
    lobby = json.dumps({"id": "boot-000001", "ts": now, "uid": _tag(demo_site)})
    telecom = json.dumps({"id": "boot-000001", "ts": now, "uid": _tag(demo_site, "B1-F01-TEL")})
    _mosquitto_pub(mosquitto, TAP_TOPIC, lobby)
    [(_, first)] = peer.take(1, topic_suffix=f"/{READER}/ack")
    for _ in range(2):  # the conflicting tap, and the same again (a redelivery)
        _mosquitto_pub(mosquitto, TAP_TOPIC, telecom)
    acks = [body for _, body in peer.take(2, topic_suffix=f"/{READER}/ack")]
    assert (first["ok"], first["checkpoint"]) == (True, "1栋 1F 大堂")
    assert [(a["id"], a["ok"], a["reason"], a.get("checkpoint")) for a in acks] == [
        ("boot-000001", False, "id_conflict", None)
    ] * 2

    def conflicts() -> int:
        return _count(engine, select(func.count()).select_from(QuarantinedMessage))

    wait_until(lambda: conflicts() >= 1, what="conflict kept")
    assert wait_quiet(conflicts, what="quarantine rows") == 1
    with session_factory(engine)() as s:
        kept = s.scalars(select(QuarantinedMessage)).one()
        signins = s.scalars(select(SignIn)).all()
    assert (kept.reason, kept.device_code) == ("id_conflict", READER) and b"04E8D714FDD5A7" in kept.payload
    assert len(signins) == 1 and signins[0].ok
    assert _metric("patrol_messages_rejected_total", reason="id_conflict") - before == 1


def test_a_reader_clock_a_year_ahead_is_flagged_and_the_api_lists_it_at_receipt_time(
    engine: Engine, gateway: Gateway, peer: SitePeers, demo_site: SiteFile
) -> None:
    """Issue 6 item 4: the sign-in counts at the receipt time (so a day's list finds it), keeps the
    reader's own time, and `clock_skew=true` lists the readers whose clocks need setting."""
    started = datetime.now(UTC)
    ahead = started.replace(year=started.year + 1)
    peer.publish(TAP_TOPIC, {"id": "ahead-1", "ts": ahead.isoformat(), "uid": _tag(demo_site)})
    peer.publish(TAP_TOPIC, {"id": "on-time-1", "ts": started.isoformat(), "uid": _tag(demo_site)})
    acks = {body["id"]: body for _, body in peer.take(2, topic_suffix=f"/{READER}/ack")}
    assert acks["ahead-1"]["clock_skew_s"] > 364 * 86400 and "clock" in acks["ahead-1"]["message"]["en"]
    assert "clock_skew_s" not in acks["on-time-1"]

    client = make_client(engine)
    headers = token_for(engine, client, Role.CONTROL_ROOM)

    def listed(**params: str) -> list[str]:
        items = client.get("/api/v1/signins", params={"site": SITE, **params}, headers=headers).json()["items"]
        return sorted(i["message_id"] for i in items)

    assert listed(clock_skew="true") == ["ahead-1"]
    assert listed(clock_skew="false") == ["on-time-1"]
    window = {
        "since": (started - timedelta(minutes=1)).isoformat(),
        "until": (started + timedelta(minutes=5)).isoformat(),
    }
    assert listed(**window) == ["ahead-1", "on-time-1"], "filters use the time the sign-in counts at"
    [item] = client.get("/api/v1/signins", params={"clock_skew": "true"}, headers=headers).json()["items"]
    assert item["tapped_at"] == item["received_at"] and item["device_ts"].startswith(str(ahead.year))
    assert item["clock_skew_s"] == acks["ahead-1"]["clock_skew_s"]
