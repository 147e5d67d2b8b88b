"""The patrol API (issue 8 item 10): routes and plans (edited with the site file's validation),
rounds with their points, hand-over (转交), finishing early, closing a missed round's alert with a
comment, fraud signals. Through the app on both databases, the gateway on a fake link and clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from core.contract import tap_topic
from server.auth import Role, create_user, issue_token
from storage.db import session_factory, transaction
from storage.sitefile.schema import SiteFile
from tests.support.api import PASSWORD, make_client
from tests.support.patrol import READER, ROUND_START, SITE, UID, at, load_plans, plan, tap_body, with_plans
from tests.support.rig import Rig, make_rig, sweeper_for

pytestmark = pytest.mark.integration


@dataclass
class Api:
    rig: Rig
    client: TestClient
    made: int = 0

    def as_(self, role: Role) -> dict[str, str]:
        self.made += 1
        with transaction(session_factory(self.rig.engine)) as s:
            user = create_user(s, f"{role.value}-{self.made}", PASSWORD, role, None, self.rig.clock.now())
            token, _ = issue_token(s, user, self.rig.clock.now(), timedelta(days=1))
        return {"Authorization": f"Bearer {token}"}

    def sweep(self) -> None:
        sweeper_for(self.rig).sweep_once()

    def tap(self, code: str, msg_id: str, minutes: float) -> None:
        when = at(minutes)
        self.rig.clock.advance(max(0.0, (when - self.rig.clock.now()).total_seconds()))
        self.rig.link.inject(tap_topic(SITE, READER), tap_body(UID[code], msg_id, when))
        self.rig.gateway.pump()

    def the_round(self) -> dict[str, Any]:
        page = self.client.get(
            "/api/v1/rounds", params={"site": SITE, "guard": "G001"}, headers=self.as_(Role.CONTROL_ROOM)
        )
        assert page.status_code == 200, page.text
        [rnd] = [r for r in page.json()["items"] if r["starts_at"].startswith("2025-11-28T02:00")]
        return rnd


@pytest.fixture
def api(engine: Engine, db_url: str, demo_site: SiteFile) -> Api:
    load_plans(engine, with_plans(demo_site, plans=[plan(early_finish=True)]))
    rig = make_rig(engine, db_url, now=ROUND_START - timedelta(minutes=30))
    client = make_client(engine)
    client.app.state.clock = rig.clock  # type: ignore[attr-defined]
    made = Api(rig, client)
    made.sweep()  # the round is generated
    return made


def test_routes_and_plans_are_listed_with_their_walking_gaps(api: Api) -> None:
    """P1 §2.3 (the plan says which places in which order) and P1 §2.4 (the shop with its floor)."""
    guard = api.as_(Role.GUARD)
    [route] = api.client.get("/api/v1/routes", params={"site": SITE}, headers=guard).json()
    assert [p["checkpoint"] for p in route["points"]][:3] == ["B1-F01-LOBBY", "B1-SHOP101", "B1-F01-TEL"]
    assert route["points"][1]["min_gap_s"] == 20 and route["points"][1]["name"]["en"].startswith("Building 1")
    [listed] = api.client.get("/api/v1/plans", params={"site": SITE}, headers=guard).json()
    assert listed["plan"]["code"] == "T-B1-MORNING" and listed["missing_peaks"] == ["morning", "evening"]
    assert api.client.get("/api/v1/plans", params={"site": "nowhere"}, headers=guard).status_code == 404


def test_a_plan_edited_through_the_api_is_validated_like_the_site_file(api: Api) -> None:
    """Issue 8 item 2: a plan naming a guard or a route that does not exist is refused with what to change;
    a good one is stored and its rounds are generated at once. A guard may not edit plans."""
    body = {"route": "T-B1-GF", "guards": ["G002"], "period": {"every": "week", "weekdays": "mon-fri"},
            "from_date": "2025-01-01", "starts": ["07:30", "17:30"], "duration_min": 30}  # fmt: skip
    url = f"/api/v1/plans/{SITE}/P-PEAKS"
    assert api.client.put(url, json=body, headers=api.as_(Role.GUARD)).status_code == 403
    boss = api.as_(Role.SUPERVISOR)
    bad = api.client.put(url, json=body | {"guards": ["G999"]}, headers=boss)
    assert bad.status_code == 422 and "G999" in bad.json()["detail"]
    wrong = api.client.put(url, json=body | {"period": {"every": "week"}}, headers=boss)
    assert wrong.status_code == 422 and "weekdays" in wrong.json()["detail"]
    made = api.client.put(url, json=body, headers=boss)
    assert made.status_code == 201, made.text
    assert made.json()["missing_peaks"] == []  # P0 §1: 07:30 and 17:30 cover both peaks
    assert api.client.put(url, json=body, headers=boss).status_code == 200
    api.sweep()
    page = api.client.get("/api/v1/rounds", params={"site": SITE, "plan": "P-PEAKS"}, headers=boss).json()
    assert {r["guard"] for r in page["items"]} == {"G002"} and page["items"]
    assert api.client.delete(url, headers=boss).status_code == 204
    assert api.client.delete(url, headers=boss).status_code == 404


def test_a_round_shows_its_points_and_is_handed_over_with_a_reason(api: Api) -> None:
    """Issue 8 item 3: 转交 hands the round to another guard, recorded with who and why; his taps count."""
    api.tap("B1-F01-LOBBY", "h1", 1)
    rnd = api.the_round()
    assert rnd["state"] == "in_progress" and rnd["next_checkpoint"] == "B1-SHOP101"
    assert [p["result"] for p in rnd["points"]] == ["on_time", "pending", "pending", "pending"]
    url = f"/api/v1/rounds/{rnd['id']}/handover"
    refused = api.client.post(url, json={"to_guard": "G999", "reason": "x"}, headers=api.as_(Role.CONTROL_ROOM))
    assert refused.status_code == 404 and "G999" in refused.json()["detail"]
    done = api.client.post(
        url, json={"to_guard": "G002", "reason": "G001 sent to a leak"}, headers=api.as_(Role.CONTROL_ROOM)
    )
    assert done.status_code == 200, done.text
    detail = done.json()
    assert detail["guard"] == "G002"
    assert [(h["from_guard"], h["to_guard"], h["reason"]) for h in detail["handovers"]] == [
        ("G001", "G002", "G001 sent to a leak")
    ]
    again = api.client.post(url, json={"to_guard": "G002", "reason": "twice"}, headers=api.as_(Role.SUPERVISOR))
    assert again.status_code == 409


def test_a_round_finished_early_misses_its_unsigned_points_and_its_alert_needs_a_comment(api: Api) -> None:
    """Issue 8 items 2 and 6: finishing early takes a reason; the unsigned points are missed at once and
    the alert stays open until a supervisor closes it with a comment (P1 §2.3)."""
    api.tap("B1-F01-LOBBY", "f1", 1)
    rnd = api.the_round()
    close = f"/api/v1/rounds/{rnd['id']}/alert/close"
    assert api.client.post(close, json={"comment": "ok"}, headers=api.as_(Role.SUPERVISOR)).status_code == 409
    finished = api.client.post(
        f"/api/v1/rounds/{rnd['id']}/finish", json={"reason": "storm"}, headers=api.as_(Role.GUARD)
    )
    assert finished.status_code == 200, finished.text
    body = finished.json()
    assert (body["state"], body["finish_reason"], body["alert_open"]) == ("incomplete", "storm", True)
    assert [p["result"] for p in body["points"]] == ["on_time", "missed", "missed", "missed"]
    api.sweep()  # the deadline engine tells the missed points
    assert all(p["missed_alerted_at"] for p in api.the_round()["points"][1:])
    assert api.client.post(close, json={"comment": "x"}, headers=api.as_(Role.CONTROL_ROOM)).status_code == 403
    closed = api.client.post(close, json={"comment": "storm warning: round stopped"}, headers=api.as_(Role.SUPERVISOR))
    assert closed.status_code == 200
    assert (closed.json()["alert_open"], closed.json()["alert_comment"]) == (False, "storm warning: round stopped")
    missed_on_out = [e for _, e in api.rig.link.published(f"/out/round/{rnd['id']}") if e["change"] == "missed"]
    assert len(missed_on_out) == 1


def test_fraud_signals_show_taps_faster_than_walking(api: Api) -> None:
    """Issue 8 item 8: a supervisor sees the round's too-fast taps, never silently fixed."""
    api.tap("B1-F01-LOBBY", "s1", 1)
    api.tap("B1-SHOP101", "s2", 1.1)  # 6 s later: refused too_fast, and shown
    rnd = api.the_round()
    detail = api.client.get(f"/api/v1/rounds/{rnd['id']}", headers=api.as_(Role.SUPERVISOR)).json()
    assert "too_fast" in {s["kind"] for s in detail["signals"]}
    assert api.client.get("/api/v1/rounds/999999", headers=api.as_(Role.SUPERVISOR)).status_code == 404
