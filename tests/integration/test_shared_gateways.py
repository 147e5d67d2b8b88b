"""Two gateways in one MQTT 5 shared-subscription group split the load; every tap, sent twice and
landing on either gateway in any order, has its effect once (the unique key, not a check, decides)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import Engine, func, select

from gateway.pipeline import Gateway
from storage.db import session_factory
from storage.models import SignIn
from storage.sitefile.schema import SiteFile
from tests.integration.conftest import gateway_settings
from tests.support.accounts import GATEWAY_ACCOUNT, SECOND_GATEWAY
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import SitePeers, end_session, wait_quiet, wait_until

pytestmark = pytest.mark.integration
TAPS = 1000


def test_shared_group_splits_load_and_duplicates_land_once(
    mosquitto: MosquittoBroker, engine: Engine, db_url: str, demo_site: SiteFile
) -> None:
    """Each gateway of the group logs in with its own gateway account (docs/broker-access.md: the client id
    is the username, so two gateways on one account would take each other's session over)."""
    group = f"g{uuid.uuid4().hex[:6]}"
    accounts = (GATEWAY_ACCOUNT, SECOND_GATEWAY)
    for name in accounts:
        end_session(mosquitto, name)  # fresh sessions, as the gateways' own client ids gave before
    gateways = [
        Gateway(
            gateway_settings(mosquitto, db_url, name).model_copy(
                update={"mqtt_shared_group": group, "batch_max_size": 50}
            ),
            engine,
        )
        for name in accounts
    ]
    for gw in gateways:
        gw.start()
    peer = SitePeers(mosquitto)
    try:
        for gw in gateways:
            wait_until(gw.link.subscribed.is_set, what="shared subscription")
        tags = [loc.tag for loc in demo_site.locations if loc.tag]
        for i in range(TAPS):
            tap = json.dumps({"id": f"sh-{i:04d}", "ts": 1764288311250, "uid": tags[i % len(tags)]})
            topic = f"patrol/v1/liyuan/reader/rdr-h0{1 + i % 6}/tap"
            for _ in range(2):
                peer.sender(topic).client.publish(topic, tap, qos=1)  # each reader on its own account

        def committed() -> int:
            with session_factory(engine)() as s:
                return int(s.scalar(select(func.count()).select_from(SignIn)) or 0)

        wait_until(lambda: committed() >= TAPS, timeout=60, what=f"{TAPS} sign-ins")
        assert wait_quiet(committed, what="sign-ins") == TAPS
        handled = [gw.handled for gw in gateways]
        assert min(handled) > 0.2 * TAPS, f"the group did not split the load: {handled}"
    finally:
        peer.close()
        for gw in gateways:
            gw.stop()
        for name in accounts:
            end_session(mosquitto, name)
