"""The quarantine over HTTP on a real database (issue 6, items 2 and 7): bounded list rows without
payloads, one item with its kept prefix, size and SHA-256, and the rejection totals from the
database (by reason, by source, over budget, flagged), filled by the real gateway pipeline."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from core.clock import FakeClock
from core.config import Settings
from gateway.pipeline import Gateway
from server.api.app import create_app
from server.auth import Role
from tests.support.api import token_for
from tests.support.fake_link import FakeLink

pytestmark = pytest.mark.integration
SITE = "liyuan"
TAP = f"patrol/v1/{SITE}/reader/rdr-h02/tap"
BUDGET = 3
BIG = b'{"id": "big2", "pad": "' + "巡更".encode() * 20_000 + b'"}'  # 120 KB, too large; 4 KiB ends mid-character


class Setup:
    def __init__(self, engine: Engine, db_url: str) -> None:
        self.clock = FakeClock()
        self.link = FakeLink(self.clock)
        cfg = Settings(  # type: ignore[call-arg]
            _env_file=None, database_url=db_url, mqtt_url="mqtt://127.0.0.1:1", quarantine_budget_per_hour=BUDGET
        )
        self.gateway = Gateway(cfg, engine, clock=self.clock, link=self.link.attach)
        self.client = TestClient(create_app(cfg, engine, clock=self.clock))
        self.headers = token_for(engine, self.client, Role.CONTROL_ROOM)

    def send(self, topic: str, payload: bytes, times: int = 1) -> None:
        for _ in range(times):
            self.link.inject(topic, payload)
        self.gateway.pump()

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, headers=self.headers, params=params)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def setup(engine: Engine, db_url: str) -> Iterator[Setup]:
    yield Setup(engine, db_url)


def test_the_list_is_bounded_rows_without_payloads(setup: Setup) -> None:
    """Issue 6 item 2: `GET /api/v1/quarantine?limit=25` returned 258 MB; rows now carry the size
    and digest, never the payload, and a detail of at most 300 characters."""
    setup.send(TAP, BIG)
    setup.send(TAP, b"{oops", times=4)
    r = setup.client.get("/api/v1/quarantine", headers=setup.headers, params={"limit": 25})
    assert len(r.content) < 4000, f"{len(r.content)} bytes for two rows"
    oops, big = r.json()["items"]
    assert "payload_base64" not in big and "payload_text" not in big
    assert (big["reason"], big["size"], big["count"]) == ("too_large", len(BIG), 1)
    assert big["sha256"] == hashlib.sha256(BIG).hexdigest()
    assert (oops["reason"], oops["count"], oops["size"]) == ("bad_json", 4, 5)
    assert len(oops["detail"]) <= 300


def test_one_item_has_its_kept_prefix_size_and_sha256(setup: Setup) -> None:
    setup.send(TAP, BIG)
    setup.send(TAP, b'{"id": "short", "uid": "zz"}')
    big_id, short_id = sorted(i["id"] for i in setup.get("/api/v1/quarantine")["items"])
    big = setup.get(f"/api/v1/quarantine/{big_id}")
    kept = base64.b64decode(big["payload_base64"])
    assert kept == BIG[:4096] and big["kept_bytes"] == 4096 and big["truncated"] is True
    assert big["size"] == len(BIG) and big["sha256"] == hashlib.sha256(BIG).hexdigest()
    text = big["payload_text"]
    assert BIG.decode().startswith(text) and len(text.encode()) > 4090, "shown up to the last whole character"
    short = setup.get(f"/api/v1/quarantine/{short_id}")
    assert (short["payload_text"], short["truncated"]) == ('{"id": "short", "uid": "zz"}', False)
    missing = setup.client.get("/api/v1/quarantine/999999", headers=setup.headers)
    assert missing.status_code == 404 and "GET /api/v1/quarantine" in missing.json()["detail"]
    assert setup.client.get(f"/api/v1/quarantine/{2**63}", headers=setup.headers).status_code == 422


def test_the_summary_gives_totals_by_reason_and_source_with_over_budget_counts(setup: Setup) -> None:
    """Issue 6 item 7: rejection totals from the database, where the API runs, whether or not the
    gateway runs in the same process; a source over its budget is flagged for the control room."""
    setup.send(TAP, b"{oops", times=5)  # folded: one row, 5 messages
    for i in range(8):  # distinct: 2 more rows fit the budget of 3, 6 are only counted
        setup.link.inject(TAP, f'{{"id": "f{i}", "uid": "zz"}}'.encode())
    setup.gateway.pump()
    setup.send(f"patrol/v1/{SITE}/reader/ghost/tap", b"{oops")  # an unknown device of a known site
    summary = setup.get("/api/v1/quarantine/summary")
    reasons = {r["reason"]: (r["rows"], r["messages"]) for r in summary["by_reason"]}
    assert reasons == {"bad_json": (2, 6), "bad_schema": (2, 2)}
    assert (summary["rows"], summary["messages"], summary["over_budget"]) == (4, 14, 6)
    assert summary["budget_per_hour"] == BUDGET
    device, ghost = summary["by_source"]
    assert device == {
        "source": f"device:{SITE}/rdr-h02",
        "site": SITE,
        "device": "rdr-h02",
        "rows": 3,
        "messages": 13,
        "over_budget": 6,
        "flagged": True,
        "last_over_at": device["last_over_at"],
    }
    assert (ghost["source"], ghost["rows"], ghost["messages"], ghost["over_budget"]) == (f"site:{SITE}", 1, 1, 0)
    assert ghost["flagged"] is False

    setup.clock.advance(timedelta(hours=2))
    later = setup.get("/api/v1/quarantine/summary")
    assert next(s for s in later["by_source"] if s["source"] == device["source"])["flagged"] is False


def test_the_quarantine_endpoints_are_for_operators_only(setup: Setup, engine: Engine) -> None:
    engineer = token_for(engine, setup.client, Role.ENGINEER)
    for path in ("/api/v1/quarantine/summary", "/api/v1/quarantine/1"):
        assert setup.client.get(path, headers=engineer).status_code == 403
        assert setup.client.get(path).status_code == 401
