"""One noisy device slows only itself (issue 6, item 3): the inbox is served round-robin by device,
so a tap queued behind a flood is in the first batch and answered before the flood's later messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from app.cli import DEMO_SITE
from gateway.pipeline import Gateway
from storage.sitefile.parse import parse_site_file
from tests.support.fake_link import FakeLink
from tests.support.rig import make_rig

SITE = "liyuan"
FLOODER = f"patrol/v1/{SITE}/reader/rdr-h02/tap"
GUARD = f"patrol/v1/{SITE}/reader/rdr-h01/tap"  # a handheld reader held by guard G001
FLOOD = 50
BATCH = 10


def _gateway(db_url: str, engine: Engine, **settings: Any) -> tuple[Gateway, FakeLink]:
    rig = make_rig(engine, db_url, **settings)
    return rig.gateway, rig.link


@pytest.fixture
def gateway(engine: Engine, db_url: str) -> Iterator[tuple[Gateway, FakeLink]]:
    yield _gateway(db_url, engine, batch_max_size=BATCH, refused_answers_per_reader_s=1000)


def _lobby_tag() -> str:
    return next(loc.tag for loc in parse_site_file(DEMO_SITE).locations if loc.code == "B1-F01-LOBBY" and loc.tag)


def test_a_tap_queued_behind_a_flood_from_another_reader_is_answered_in_the_first_batch(
    gateway: tuple[Gateway, FakeLink],
) -> None:
    """Issue 6 item 3: during a flood other readers' taps waited 3.7 s (p50) behind one FIFO."""
    gw, link = gateway
    for i in range(FLOOD):
        link.inject(FLOODER, f'{{"id": "bad-{i}", "uid": "zz"}}'.encode())
    tap = link.inject(GUARD, json.dumps({"id": "good-1", "ts": 1764288311250, "uid": _lobby_tag()}).encode())
    assert gw.pump() == FLOOD + 1

    answers: list[tuple[str, Any]] = [(t, json.loads(p)) for what, (t, p, *_) in _publishes(link)]
    ids = [a["id"] for _, a in answers if "id" in a]
    good_at = ids.index("good-1")
    assert good_at < BATCH, f"the guard's answer came after {good_at} flood answers: {ids[:good_at]}"
    assert answers[good_at][1]["ok"] is True
    first_batch_acks = link.acked[:BATCH]
    assert tap.mid in first_batch_acks, "the guard's tap was not acked with the first batch"
    assert sorted(link.acked) == list(range(1, FLOOD + 2)), "every message is acked once"
    flood_ids = [i for i in ids if i.startswith("bad-")]
    assert flood_ids == [f"bad-{i}" for i in range(FLOOD)], "one device's messages stay in order"


def test_every_message_is_acked_only_after_its_own_answer_under_round_robin(gateway: tuple[Gateway, FakeLink]) -> None:
    """Acks may go out in another order than the messages came (MQTT allows it across packet ids),
    but each one only after its batch is committed and its answer published (issue 6, item 1)."""
    gw, link = gateway
    ids: dict[int, str] = {}
    for i in range(25):
        ids[link.inject(FLOODER, f'{{"id": "bad-{i}", "uid": "zz"}}'.encode()).mid] = f"bad-{i}"
    good = {"id": "good-2", "ts": 1764288311250, "uid": _lobby_tag()}
    ids[link.inject(GUARD, json.dumps(good).encode()).mid] = "good-2"
    gw.pump()
    answered: set[str] = set()
    for what, item in link.log:
        if what == "publish" and item[0].endswith("/ack"):
            answered.add(json.loads(item[1])["id"])
        elif what == "ack":
            assert ids[item] in answered, f"{ids[item]} acked before it was answered"
    assert answered == set(ids.values())


def test_a_flooding_device_fills_at_most_its_share_of_a_batch(engine: Engine, db_url: str) -> None:
    """The cap per device bounds what the others wait for: the batch that carries the guard's tap
    holds at most `batch_max_per_device` flood messages, however large batches may be."""
    gw, link = _gateway(db_url, engine, batch_max_size=1000, batch_max_per_device=5, refused_answers_per_reader_s=1000)
    for i in range(FLOOD):
        link.inject(FLOODER, f'{{"id": "bad-{i}", "uid": "zz"}}'.encode())
    tap = link.inject(GUARD, json.dumps({"id": "good-3", "ts": 1764288311250, "uid": _lobby_tag()}).encode())
    gw.pump()
    acks = link.acked
    assert acks.index(tap.mid) < 6, f"the guard's tap was acked after {acks.index(tap.mid)} flood messages"
    answers = [json.loads(p)["id"] for _, (t, p, *_) in _publishes(link)]
    assert answers.index("good-3") < 6
    assert sorted(acks) == list(range(1, FLOOD + 2))


def _publishes(link: FakeLink) -> list[tuple[str, tuple[str, bytes, int, bool]]]:
    return [(what, item) for what, item in link.log if what == "publish" and item[0].endswith("/ack")]


def test_a_flood_gets_at_most_the_capped_red_answers_a_second_and_a_guard_still_gets_hers(
    engine: Engine, db_url: str
) -> None:
    """Issue 6 items 2-3: a reader flooding garbage is answered red at most
    `refused_answers_per_reader_s` times a second (the rest counted, not sent), so its acks are not
    held behind thousands of publications; every message is still acked, the guard's tap answered."""
    rig = make_rig(engine, db_url, batch_max_size=BATCH, refused_answers_per_reader_s=20)
    gw, link, clock = rig.gateway, rig.link, rig.clock
    shed_before = REGISTRY.get_sample_value("patrol_answers_shed_total") or 0.0
    for i in range(FLOOD):
        link.inject(FLOODER, f'{{"id": "bad-{i}", "uid": "zz"}}'.encode())
    tap = link.inject(GUARD, json.dumps({"id": "good-4", "ts": 1764288311250, "uid": _lobby_tag()}).encode())
    gw.pump()
    ids = [json.loads(p)["id"] for _, (t, p, *_) in _publishes(link)]
    assert [i for i in ids if i.startswith("bad-")] == [f"bad-{i}" for i in range(20)]
    assert "good-4" in ids and tap.mid in link.acked
    assert sorted(link.acked) == list(range(1, FLOOD + 2)), "every message is still acked once"
    assert (REGISTRY.get_sample_value("patrol_answers_shed_total") or 0.0) - shed_before == FLOOD - 20
    clock.advance(1)
    link.inject(FLOODER, b'{"id": "bad-next", "uid": "zz"}')
    gw.pump()
    assert json.loads(_publishes(link)[-1][1][1])["id"] == "bad-next", "a new second, a new allowance"
