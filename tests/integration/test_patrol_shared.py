"""One guard's taps split across two gateways of a `$share` group and delivered out of order, each
twice (issue 8 Done-when): the round's per-point results are those of the taps judged in the order
they were made, as one gateway receiving them in order gives (P1 §2.3; issue 8 item 5).

Both gateways and the sweeper run on one FakeClock; PostgreSQL and SQLite."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from app.wiring import deadline_handlers
from core.clock import FakeClock
from core.contract import tap_topic
from core.rounds import Tap, judge_all
from gateway.pipeline import Gateway
from gateway.sweeper import Sweeper
from storage.db import session_factory
from storage.models import Round as RoundRow
from storage.models import RoundPoint, SignIn
from storage.rounds import as_value
from storage.sitefile.schema import SiteFile
from tests.integration.conftest import gateway_settings
from tests.support.accounts import GATEWAY_ACCOUNT, SECOND_GATEWAY
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import SitePeers, end_session, wait_quiet, wait_until
from tests.support.patrol import GUARD, READER, ROUND_START, SITE, UID, at, load_plans, rounds_of, tap_body, with_plans

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
#: (checkpoint, minutes into the round): one in too fast, one tapped twice, the last one late
TAPS = [
    ("B1-F01-LOBBY", 1.0),
    ("B1-SHOP101", 1.2),  # 12 s after the lobby: too fast, refused
    ("B1-SHOP101", 3.0),
    ("B1-SHOP102", 4.0),
    ("B1-F01-TEL", 6.0),
    ("B1-F01-TEL", 6.5),  # the guard's double tap: a duplicate
    ("B1-SHOP102", 20.0),  # signed already: refused
]


def test_taps_across_two_gateways_out_of_order_give_the_round_of_the_taps_in_order(
    mosquitto: MosquittoBroker, engine: Engine, db_url: str, demo_site: SiteFile
) -> None:
    load_plans(engine, with_plans(demo_site))
    clock = FakeClock(ROUND_START - timedelta(minutes=30))
    group = f"p{uuid.uuid4().hex[:6]}"
    accounts = (GATEWAY_ACCOUNT, SECOND_GATEWAY)
    for name in accounts:
        end_session(mosquitto, name)
    gateways = [
        Gateway(
            gateway_settings(mosquitto, db_url, name).model_copy(
                update={"mqtt_shared_group": group, "batch_max_size": 2}
            ),
            engine,
            clock=clock,
        )
        for name in accounts
    ]
    settings = gateway_settings(mosquitto, db_url)
    Sweeper(
        session_factory(engine), clock, deadline_handlers(settings, gateways[0].incidents), lambda _e: None
    ).sweep_once()
    [(generated, _)] = rounds_of(engine)
    clock.advance((at(30) - clock.now()).total_seconds())
    for gw in gateways:
        gw.start()
    peers = SitePeers(mosquitto)
    try:
        for gw in gateways:
            wait_until(gw.link.subscribed.is_set, what="shared subscription")
        order = list(enumerate(TAPS))
        random.Random(8).shuffle(order)
        assert [i for i, _ in order] != sorted(i for i, _ in order), "the taps must arrive out of order"
        for i, (code, minutes) in order:
            for _ in range(2):  # each twice: a redelivery may land on the other gateway
                peers.publish(tap_topic(SITE, READER), tap_body(UID[code], f"sh-{i}", at(minutes)))

        def signed() -> int:
            with session_factory(engine)() as s:
                return int(s.scalar(select(func.count()).select_from(SignIn)) or 0)

        wait_until(lambda: signed() >= len(TAPS), timeout=30, what="every tap signed")
        assert wait_quiet(signed, what="sign-ins") == len(TAPS)
        handled = [gw.handled for gw in gateways]
        assert min(handled) > 0, f"one gateway took every tap: {handled}"
    finally:
        peers.close()
        for gw in gateways:
            gw.stop()
        for name in accounts:
            end_session(mosquitto, name)
    with session_factory(engine)() as s:
        row = s.get(RoundRow, generated.id)
        assert row is not None
        fresh = as_value(
            row, list(s.scalars(select(RoundPoint).where(RoundPoint.round_id == row.id))), GUARD, fresh=True
        )
    in_order, _ = judge_all(fresh, [Tap(code, at(minutes)) for code, minutes in TAPS])
    [(rnd, points)] = rounds_of(engine)
    assert points == {p.code: p.result for p in in_order.points}
    assert points == {
        "B1-F01-LOBBY": "on_time",
        "B1-SHOP101": "on_time",
        "B1-SHOP102": "on_time",
        "B1-F01-TEL": "on_time",
    }
    assert rnd.state == "completed"
