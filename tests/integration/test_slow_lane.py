"""A flooding device's messages queue apart, in the gateway's slow-lane session, and none is lost on
the way there, back, or across a restart (issue 6, item 3; gateway/lanes.py).

Real Mosquitto with the shipped rules, real database (SQLite and PostgreSQL). The gateway runs on a
`FakeClock`: its flood watch counts in one-second windows of that clock, so every message counts in
one window until the test moves the clock, and the hold time passes when the test says so."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select

from core.broker_access import GATEWAY_ACCOUNT
from core.clock import FakeClock
from core.config import Settings
from core.contract import SUBSCRIPTIONS, tap_topic
from gateway.lanes import LaneLink, device_filter, slow_lane_filters
from gateway.pipeline import Gateway
from storage.db import session_factory
from storage.models import Device, InboundMessage
from storage.sitefile.schema import SiteFile
from tests.integration.conftest import EmbeddedTestBroker, gateway_settings
from tests.support.accounts import accounts_for_tests
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import SitePeers, end_gateway_sessions, wait_until

pytestmark = pytest.mark.integration
SITE = "liyuan"
FLOODER, OTHER = "rdr-h02", "rdr-h01"
LIMIT = 50


def _settings(broker: MosquittoBroker | EmbeddedTestBroker, db_url: str, **overrides: object) -> Settings:
    return gateway_settings(broker, db_url).model_copy(
        update={"flood_msgs_per_s": LIMIT, "flood_hold_s": 60, **overrides}
    )


def _start(settings: Settings, engine: Engine, clock: FakeClock) -> Gateway:
    gw = Gateway(settings, engine, clock=clock)
    gw.start()
    wait_until(gw.link.subscribed.is_set, what="gateway subscription")
    return gw


def _lanes(gw: Gateway) -> LaneLink:
    assert isinstance(gw.link, LaneLink), "the gateway runs two sessions unless told not to"
    return gw.link


def _stored(engine: Engine, device: str) -> int:
    with session_factory(engine)() as s:
        stmt = select(func.count(func.distinct(InboundMessage.msg_id))).join(Device).where(Device.code == device)
        return int(s.scalar(stmt) or 0)


def _flood(peer: SitePeers, tag: str, count: int, prefix: str) -> None:
    """`count` valid taps from the flooding reader as fast as its client sends them (QoS 1, distinct ids)."""
    topic = tap_topic(SITE, FLOODER)
    client = peer.sender(topic).client
    now = datetime.now(UTC).isoformat()
    infos = [
        client.publish(topic, json.dumps({"id": f"{prefix}{i:05d}", "ts": now, "uid": tag}), qos=1)
        for i in range(count)
    ]
    infos[-1].wait_for_publish(30)


def _tag(site: SiteFile) -> str:
    return next(loc.tag for loc in site.locations if loc.code == "B1-F01-LOBBY" and loc.tag)


@pytest.fixture
def sessions(mosquitto: MosquittoBroker) -> Iterator[None]:
    end_gateway_sessions(mosquitto, GATEWAY_ACCOUNT)
    yield
    end_gateway_sessions(mosquitto, GATEWAY_ACCOUNT)


def test_a_flooding_reader_queues_apart_loses_nothing_and_comes_back_after_the_hold_time(
    mosquitto: MosquittoBroker, engine: Engine, db_url: str, peer: SitePeers, demo_site: SiteFile, sessions: None
) -> None:
    clock = FakeClock(datetime.now(UTC))
    gw = _start(_settings(mosquitto, db_url), engine, clock)
    lanes = _lanes(gw)
    try:
        _flood(peer, _tag(demo_site), 2000, "fld")
        wait_until(lambda: lanes.slowed == {f"{SITE}/{FLOODER}"}, what="the flooder moved to the slow lane")
        assert {f for f, _ in lanes.slow.subscriptions.filters} == set(slow_lane_filters(f"{SITE}/{FLOODER}"))
        main = {f for f, _ in lanes.main.subscriptions.filters}
        assert device_filter(f"{SITE}/{OTHER}") in main and device_filter(f"{SITE}/{FLOODER}") not in main
        assert SUBSCRIPTIONS[0][0] not in main, "the wildcard would still bring the flood to the main session"

        peer.publish(tap_topic(SITE, OTHER), {"id": "other-1", "ts": datetime.now(UTC).isoformat(), "uid": "04A1"})
        peer.take(1, topic_suffix=f"/{OTHER}/ack")  # another reader is still answered
        wait_until(lambda: _stored(engine, FLOODER) == 2000, timeout=60, what="every flood tap stored")

        clock.advance(61)  # quiet for the hold time: back in the main lane, on the wildcard again
        wait_until(
            lambda: lanes.main.subscriptions.filters == SUBSCRIPTIONS and lanes.slow.subscriptions.filters == (),
            what="lanes restored",
        )
        before = lanes.main.received
        _flood(peer, _tag(demo_site), 1, "after")
        wait_until(lambda: _stored(engine, FLOODER) == 2001, what="a tap after the flood")
        assert lanes.main.received > before
    finally:
        gw.stop()


def test_a_restart_while_a_device_is_in_the_slow_lane_loses_none_of_its_backlog(
    mosquitto: MosquittoBroker, engine: Engine, db_url: str, peer: SitePeers, demo_site: SiteFile, sessions: None
) -> None:
    """The new process drops the old slow-lane filter (it does not know that device floods) but the
    broker still delivers what it had queued in that session: every tap is stored once."""
    settings = _settings(mosquitto, db_url, batch_max_size=20)  # small commits: a backlog is left at the stop
    clock = FakeClock(datetime.now(UTC))
    gw = _start(settings, engine, clock)
    publisher = threading.Thread(target=_flood, args=(peer, _tag(demo_site), 3000, "rst"))
    try:
        publisher.start()
        wait_until(lambda: bool(_lanes(gw).slowed), what="the flooder moved to the slow lane")
    finally:
        gw.stop()  # while the reader is still flooding: the rest queues in the slow session
        publisher.join(60)
    left = 3000 - _stored(engine, FLOODER)
    assert left > 0, "the first gateway handled the whole flood: nothing was left to test the restart with"
    gw = _start(settings, engine, FakeClock(datetime.now(UTC)))
    try:
        wait_until(lambda: _stored(engine, FLOODER) == 3000, timeout=60, what=f"the {left} taps left at the stop")
    finally:
        gw.stop()


@pytest.fixture
def embedded(demo_site: SiteFile) -> Iterator[EmbeddedTestBroker]:
    broker = EmbeddedTestBroker(accounts_for_tests(demo_site))
    broker.start()
    yield broker
    broker.cleanup()


def test_the_slow_lane_works_on_the_embedded_broker_too(
    embedded: EmbeddedTestBroker, engine: Engine, db_url: str, demo_site: SiteFile
) -> None:
    """The demo's broker (amqtt, MQTT 3.1.1: no No Local, no Receive Maximum) with its own accounts."""
    gw = _start(_settings(embedded, db_url), engine, FakeClock(datetime.now(UTC)))
    peer = SitePeers(embedded, subscribe=(f"patrol/v1/{SITE}/reader/+/ack",))
    try:
        _flood(peer, _tag(demo_site), 300, "emb")
        wait_until(lambda: bool(_lanes(gw).slowed), what="the flooder moved to the slow lane")
        peer.publish(tap_topic(SITE, OTHER), {"id": "other-1", "ts": datetime.now(UTC).isoformat(), "uid": "04A1"})
        peer.take(1, topic_suffix=f"/{OTHER}/ack")
        wait_until(lambda: _stored(engine, FLOODER) == 300, timeout=60, what="every flood tap stored")
    finally:
        peer.close()
        gw.stop()
