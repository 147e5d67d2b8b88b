"""Two gateways in one MQTT 5 shared-subscription group split the load; every tap, sent twice and
landing on either gateway in any order, has its effect once (the unique key, not a check, decides)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import Engine, func, select

from core.config import Settings
from gateway.pipeline import Gateway
from storage.db import session_factory
from storage.models import SignIn
from storage.sitefile.schema import SiteFile
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import Peer, wait_quiet, wait_until

pytestmark = pytest.mark.integration
TAPS = 1000


def test_shared_group_splits_load_and_duplicates_land_once(
    mosquitto: MosquittoBroker, engine: Engine, db_url: str, demo_site: SiteFile
) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    gateways = [
        Gateway(Settings(_env_file=None, mqtt_url=mosquitto.url, database_url=db_url,  # type: ignore[call-arg]
                         mqtt_client_id=f"gw-{group}-{i}", mqtt_shared_group=group, batch_max_size=50), engine)
        for i in range(2)
    ]  # fmt: skip
    for gw in gateways:
        gw.start()
    peer = Peer(mosquitto.url)
    try:
        for gw in gateways:
            wait_until(gw.link.subscribed.is_set, what="shared subscription")
        tags = [loc.tag for loc in demo_site.locations if loc.tag]
        for i in range(TAPS):
            tap = json.dumps({"id": f"sh-{i:04d}", "ts": 1764288311250, "uid": tags[i % len(tags)]})
            for _ in range(2):
                peer.client.publish(f"patrol/v1/liyuan/reader/rdr-h0{1 + i % 6}/tap", tap, qos=1)

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
