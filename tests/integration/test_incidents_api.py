"""The incidents API (issue 7) on a real database, both kinds: alarms raised by readings injected
through the gateway pipeline (tests/support/rig.py), then every endpoint exercised over HTTP with
the app on the rig's fake clock: filters, roles, the roll-up, acknowledging, snoozes, sensor
readings, procedures, and tickets worked from opening to closing under the rules of P5 and P0 §5."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from core.procedures import REQUIRED_PROCEDURES
from server.auth import Role, create_user, issue_token
from storage.db import session_factory, transaction
from storage.incident_notes import OUT_PUBLISH
from storage.models import DeadlineRow, OutboxMessage, TicketEvent
from storage.outbox import mark_failed
from tests.support.api import PASSWORD, make_client
from tests.support.rig import Rig, make_rig

pytestmark = pytest.mark.integration

SITE = "liyuan"
T0 = datetime(2025, 11, 28, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: the day shift is on duty
GAS, LEAK, LIFT = "gas-b1-shop101", "leak-b1-pump", "lift-b3-1"
ALARMS, TICKETS = "/api/v1/alarms", "/api/v1/tickets"


@dataclass
class Api:
    rig: Rig
    client: TestClient
    engine: Engine
    made: int = 0

    def as_(self, role: Role, name: str | None = None) -> dict[str, str]:
        """A bearer token for a new user of `role` (issued directly: no password check per test)."""
        self.made += 1
        username = name or f"{role.value}-{self.made}"
        with transaction(session_factory(self.engine)) as s:
            user = create_user(s, username, PASSWORD, role, None, self.rig.clock.now())
            token, _ = issue_token(s, user, self.rig.clock.now(), timedelta(days=1))
        return {"Authorization": f"Bearer {token}"}

    def reading(self, device: str, msg_id: str, kind: str, **values: Any) -> None:
        body = {"id": msg_id, "ts": int(self.rig.clock.now().timestamp() * 1000), "kind": kind, "values": values}
        self.rig.link.inject(f"patrol/v1/{SITE}/sensor/{device}/telemetry", body)
        self.rig.gateway.pump()

    def out_events(self) -> list[dict[str, Any]]:
        """The out/ events the API handed to the gateway (due at once, published by its sweeper)."""
        with session_factory(self.engine)() as s:
            rows = s.scalars(select(DeadlineRow).where(DeadlineRow.kind == OUT_PUBLISH).order_by(DeadlineRow.id))
            return [e["event"] | {"due_at": r.due_at} for r in rows for e in r.payload["events"]]


@pytest.fixture
def api(engine: Engine, db_url: str) -> Api:
    rig = make_rig(engine, db_url, now=T0)
    client = make_client(engine)
    client.app.state.clock = rig.clock  # type: ignore[attr-defined]
    return Api(rig, client, engine)


def _three_alarms(api: Api) -> dict[str, dict[str, Any]]:
    """A critical gas leak and a flooded pump room in building 1, an elevator fault in building 3."""
    api.reading(GAS, "g-1", "gas", lel_pct=30.0)
    api.rig.clock.advance(60)
    api.reading(LEAK, "w-1", "water_leak", wet=True)
    api.rig.clock.advance(60)
    api.reading(LIFT, "e-1", "elevator", state="fault", occupied=False)
    api.rig.clock.advance(60)
    page = api.client.get(ALARMS, headers=api.as_(Role.CONTROL_ROOM)).json()
    return {a["device"]: a for a in page["items"]}


def _ticket(api: Api, headers: dict[str, str], ticket_id: int) -> dict[str, Any]:
    r = api.client.get(f"{TICKETS}/{ticket_id}", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_alarm_list_filters_and_the_roll_up_floor_building_site(api: Api) -> None:
    by_device = _three_alarms(api)
    assert set(by_device) == {GAS, LEAK, LIFT}
    gas = by_device[GAS]
    assert (gas["alarm_type"], gas["severity"], gas["active"], gas["acknowledged"]) == ("gas", "critical", True, False)
    assert gas["building"] == "B1" and gas["location_name"]["zh"] and gas["location_name"]["en"]
    assert gas["ticket_id"] is not None and gas["device_name"]["en"].startswith("Building 1")
    h = api.as_(Role.ENGINEER)

    def devices(**params: Any) -> set[str]:
        r = api.client.get(ALARMS, params=params, headers=h)
        assert r.status_code == 200, r.text
        return {a["device"] for a in r.json()["items"]}

    assert devices(site=SITE, state="active") == {GAS, LEAK, LIFT}
    assert devices(state="cleared") == set()
    assert devices(severity="critical") == {GAS}
    assert devices(type="water_leak") == {LEAK}
    assert devices(building="B1") == {GAS, LEAK}
    assert devices(device=LIFT, acknowledged=False) == {LIFT}
    assert devices(acknowledged=True) == set()
    assert devices(site=SITE, since=(T0 + timedelta(seconds=30)).isoformat()) == {LEAK, LIFT}
    assert devices(until=(T0 + timedelta(seconds=30)).isoformat()) == {GAS}
    assert devices(site="elsewhere") == set()
    first = api.client.get(ALARMS, params={"limit": 2}, headers=h).json()
    assert len(first["items"]) == 2 and first["next_before_id"] == first["items"][-1]["id"]
    rest = api.client.get(ALARMS, params={"limit": 2, "before_id": first["next_before_id"]}, headers=h).json()
    assert [a["device"] for a in rest["items"]] == [GAS] and rest["next_before_id"] is None
    assert api.client.get(ALARMS, params={"state": "open"}, headers=h).status_code == 422
    one = api.client.get(f"{ALARMS}/{gas['id']}", headers=h)
    assert one.status_code == 200 and one.json()["id"] == gas["id"]
    assert api.client.get(f"{ALARMS}/999999", headers=h).status_code == 404

    [site] = api.client.get(f"{ALARMS}/summary", params={"site": SITE}, headers=h).json()
    assert (site["site"], site["active"], site["critical"], site["unacknowledged"]) == (SITE, 3, 1, 3)
    buildings = {b["building"]: b for b in site["buildings"]}
    assert set(buildings) == {"B1", "B3"}
    b1 = buildings["B1"]
    assert (b1["active"], b1["critical"], b1["unacknowledged"]) == (2, 1, 2)
    assert b1["label"] == {
        "zh": "1栋：2 条告警，1 条严重，2 条未确认",
        "en": "Building 1: 2 active, 1 critical, 2 unacknowledged",
    }
    assert sum(f["active"] for f in b1["floors"]) == 2 and len(b1["floors"]) == 2, "the shop floor and the basement"
    assert all(f["floor_label"] and f["label"]["zh"].startswith("1栋 ") for f in b1["floors"])
    assert buildings["B3"]["active"] == 1 and buildings["B3"]["critical"] == 0
    assert api.client.get(f"{ALARMS}/summary", params={"site": "nowhere"}, headers=h).status_code == 404


ROLE_CHECKS = [
    (Role.GUARD, "GET", ALARMS, 403),
    (Role.GUARD, "GET", f"{ALARMS}/summary", 403),
    (Role.MANAGER, "GET", ALARMS, 200),
    (Role.ENGINEER, "POST", f"{ALARMS}/1/acknowledge", 403),
    (Role.MANAGER, "POST", f"{ALARMS}/1/acknowledge", 403),
    (Role.CONTROL_ROOM, "POST", f"{ALARMS}/snoozes", 403),
    (Role.ENGINEER, "POST", f"{ALARMS}/snoozes", 403),
    (Role.GUARD, "GET", f"{ALARMS}/snoozes", 403),
    (Role.GUARD, "GET", f"/api/v1/sensors/{SITE}/{LEAK}/readings", 403),
    (Role.ENGINEER, "GET", f"/api/v1/sensors/{SITE}/{LEAK}/readings", 200),
    (Role.GUARD, "GET", "/api/v1/procedures", 200),
    (Role.ENGINEER, "POST", TICKETS, 403),
    (Role.MANAGER, "POST", f"{TICKETS}/1/acknowledge", 403),
    (Role.GUARD, "POST", f"{TICKETS}/1/acknowledge", 403),
    (Role.GUARD, "POST", f"{TICKETS}/1/close", 403),
]


def test_each_endpoint_admits_only_its_roles(api: Api) -> None:
    """The role check comes before the body is read: a wrong role is 403 whatever it sends."""
    tokens = {role: api.as_(role) for role in {r for r, *_ in ROLE_CHECKS}}
    for role, method, path, code in ROLE_CHECKS:
        r = api.client.request(method, path, json={}, headers=tokens[role])
        assert r.status_code == code, (role, method, path, r.text)
        if code == 403:
            assert "may not" in r.json()["detail"]


def test_acknowledging_an_alarm_records_who_and_when_takes_its_ticket_and_twice_is_409(api: Api) -> None:
    """The comment, who and when are kept; the alarm's open ticket is acknowledged with it (the
    escalation stops); the out/ events go to the gateway in the same transaction."""
    gas = _three_alarms(api)[GAS]
    ops = api.as_(Role.CONTROL_ROOM, "wang")
    at = api.rig.clock.now()
    r = api.client.post(f"{ALARMS}/{gas['id']}/acknowledge", json={"comment": "on our way"}, headers=ops)
    assert r.status_code == 200, r.text
    acked = r.json()
    assert (acked["acknowledged"], acked["acknowledged_by"], acked["comment"]) == (True, "wang", "on our way")
    assert datetime.fromisoformat(acked["acknowledged_at"]) == at
    ticket = _ticket(api, ops, gas["ticket_id"])
    assert (ticket["state"], ticket["acknowledged_by"]) == ("acknowledged", "wang")
    again = api.client.post(f"{ALARMS}/{gas['id']}/acknowledge", json={}, headers=ops)
    assert again.status_code == 409
    body = again.json()
    assert body["code"] == "already_acknowledged" and "wang" in body["message"]["zh"] and body["detail"]
    assert api.client.post(f"{ALARMS}/999999/acknowledge", json={}, headers=ops).status_code == 404
    events = api.out_events()
    assert [(e["type"], e["change"]) for e in events] == [("alarm", "acknowledged"), ("ticket", "acknowledged")]
    assert all(e["due_at"] == at for e in events), "handed to the gateway to publish at once"
    assert api.client.post(f"{TICKETS}/{gas['ticket_id']}/acknowledge", headers=ops).status_code == 409


def test_a_safety_critical_step_is_checked_only_with_an_explicit_confirmation_P5_2_4_2(api: Api) -> None:
    """P5 §2.4.2 "never force the car doors open" and P5 §2.4.5(2) "no switches, phones, radios or
    torches": checking such a step without confirm_safety is 422 with the reason in both languages."""
    alarms = _three_alarms(api)
    ops = api.as_(Role.SUPERVISOR, "chen")
    for device, step in ((LIFT, "never_force_doors"), (GAS, "no_sparks")):
        path = f"{TICKETS}/{alarms[device]['ticket_id']}/steps/{step}/check"
        refused = api.client.post(path, json={"note": "done"}, headers=ops)
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["code"] == "safety_confirmation_required"
        assert "安全关键" in body["message"]["zh"] and "safety-critical" in body["message"]["en"]
        ok = api.client.post(path, json={"confirm_safety": True, "note": "doors left shut"}, headers=ops)
        assert ok.status_code == 200, ok.text
        [done] = [s for s in ok.json()["steps"] if s["code"] == step]
        assert (done["state"], done["safety_confirmed"], done["by"], done["note"]) == (
            "done",
            True,
            "chen",
            "doors left shut",
        )
        assert api.client.post(path, json={"confirm_safety": True}, headers=ops).status_code == 409
    lift = alarms[LIFT]["ticket_id"]
    assert api.client.post(f"{TICKETS}/{lift}/steps/no_such_step/check", json={}, headers=ops).status_code == 404
    assert api.client.post(f"{TICKETS}/999999/steps/record/check", json={}, headers=ops).status_code == 404


def test_closing_is_refused_listing_every_problem_then_the_full_happy_path_P0_5(api: Api) -> None:
    """P0 §5: a ticket closes only when acknowledged, every step done or n/a (with a reason), and
    the record (what happened, cause, prevention) complete; a refusal lists every problem."""
    guard, ops = api.as_(Role.GUARD, "G001"), api.as_(Role.CONTROL_ROOM, "wang")
    opened = api.client.post(
        TICKETS,
        json={"site": SITE, "procedure": "medical_emergency", "location": "B3-F01-LOBBY", "note": "resident fainted"},
        headers=guard,
    )
    assert opened.status_code == 201, opened.text
    ticket = opened.json()
    tid, steps = ticket["id"], [s["code"] for s in ticket["steps"]]
    assert (ticket["procedure"], ticket["state"], ticket["opened_by"], ticket["building"]) == (
        "medical_emergency",
        "open",
        "G001",
        "B3",
    )
    assert ticket["location_name"]["zh"] and ticket["steps_pending"] == len(steps) == ticket["steps_total"]
    assert set(ticket["deadlines"]) >= {"ack_by", "on_site_by"} and steps[-1] == "record"
    assert all(s["text"]["zh"] and s["text"]["en"] for s in ticket["steps"])

    refused = api.client.post(f"{TICKETS}/{tid}/close", json={}, headers=ops)
    assert refused.status_code == 409, refused.text
    problems = refused.json()["problems"]
    codes = [p["code"] for p in problems]
    assert codes[0] == "not_acknowledged"
    assert [p["step"] for p in problems if p["code"] == "step_pending"] == steps
    assert {"record_what_happened_missing", "record_cause_missing", "record_prevention_missing"} <= set(codes)
    assert all(p["message"]["zh"] and p["message"]["en"] for p in problems)

    api.rig.clock.advance(30)
    assert api.client.post(f"{TICKETS}/{tid}/acknowledge", headers=ops).status_code == 200
    first, *middle, last = steps
    assert api.client.post(f"{TICKETS}/{tid}/steps/{first}/check", json={}, headers=guard).status_code == 200
    no_reason = api.client.post(f"{TICKETS}/{tid}/steps/{middle[0]}/not-applicable", json={}, headers=ops)
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "reason_required"
    r = api.client.post(
        f"{TICKETS}/{tid}/steps/{middle[0]}/not-applicable", json={"reason": "no bleeding"}, headers=ops
    )
    assert r.status_code == 200, r.text
    for code in [*middle[1:], last]:
        assert api.client.post(f"{TICKETS}/{tid}/steps/{code}/check", json={}, headers=guard).status_code == 200
    incomplete = api.client.post(f"{TICKETS}/{tid}/close", json={"what_happened": "fainted"}, headers=ops)
    assert incomplete.status_code == 422, "only the record is missing: something the person can add"
    assert {p["code"] for p in incomplete.json()["problems"]} == {"record_cause_missing", "record_prevention_missing"}

    api.rig.clock.advance(600)
    record = {"what_happened": "a resident fainted in the lobby", "cause": "heat", "prevention": "open the vents"}
    closed = api.client.post(f"{TICKETS}/{tid}/close", json=record, headers=ops)
    assert closed.status_code == 200, closed.text
    done = closed.json()
    assert (done["state"], done["closed_by"], done["record"], done["steps_pending"]) == ("closed", "wang", record, 0)
    assert datetime.fromisoformat(done["closed_at"]) == T0 + timedelta(seconds=630)
    kinds = [(e["kind"], e["actor"]) for e in done["events"]]
    assert kinds[0] == ("opened", "G001") and ("note", "G001") in kinds
    assert ("acknowledged", "wang") in kinds and ("step_not_applicable", "wang") in kinds
    assert kinds[-1] == ("closed", "wang")
    assert done["events"][-1]["detail"]["cause"] == "heat"
    assert datetime.fromisoformat(done["events"][-1]["at"]) == T0 + timedelta(seconds=630)
    assert api.client.post(f"{TICKETS}/{tid}/steps/{first}/check", json={}, headers=ops).status_code == 409
    published = [e["change"] for e in api.out_events() if e["type"] == "ticket" and e["id"] == tid]
    assert published[0] == "opened" and published[-1] == "closed" and "acknowledged" in published
    with session_factory(api.engine)() as s:
        stored = s.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == tid)).all()
    assert stored.count("step_done") == len(steps) - 1


def test_engineers_see_and_work_only_engineering_tickets_guards_only_security_ones(api: Api) -> None:
    water = _three_alarms(api)[LEAK]["ticket_id"]
    ops, eng, guard = api.as_(Role.CONTROL_ROOM), api.as_(Role.ENGINEER, "E002"), api.as_(Role.GUARD)
    opened = api.client.post(TICKETS, json={"site": SITE, "procedure": "disturbance"}, headers=ops).json()
    disturbance = opened["id"]
    assert opened["departments"] == ["security"] and opened["location"] is None

    def ids(headers: dict[str, str], **params: Any) -> set[int]:
        r = api.client.get(TICKETS, params=params, headers=headers)
        assert r.status_code == 200, r.text
        return {t["id"] for t in r.json()["items"]}

    everything = ids(ops)
    assert disturbance in everything and water in everything and len(everything) == 4
    assert disturbance not in ids(eng) and water in ids(eng)
    assert ids(ops, department="engineering") == ids(eng)
    assert ids(ops, procedure="disturbance") == {disturbance} == ids(guard, procedure="disturbance")
    assert ids(ops, state="acknowledged") == set() and ids(ops, site=SITE, state="open") == everything
    assert api.client.get(f"{TICKETS}/{disturbance}", headers=eng).status_code == 403
    assert api.client.post(f"{TICKETS}/{disturbance}/acknowledge", headers=eng).status_code == 403
    assert api.client.post(f"{TICKETS}/{water}/acknowledge", headers=eng).json()["acknowledged_by"] == "E002"
    step = _ticket(api, eng, water)["steps"][0]["code"]
    assert api.client.post(f"{TICKETS}/{water}/steps/{step}/check", json={}, headers=guard).status_code == 200
    assert api.client.get(f"{TICKETS}/999999", headers=ops).status_code == 404
    page = api.client.get(TICKETS, params={"limit": 1}, headers=ops).json()
    assert page["next_before_id"] == page["items"][0]["id"] == disturbance
    unknown = {"site": "nowhere", "procedure": "disturbance"}
    assert api.client.post(TICKETS, json=unknown, headers=ops).status_code == 404
    bad_place = {"site": SITE, "procedure": "disturbance", "location": "NOWHERE"}
    assert api.client.post(TICKETS, json=bad_place, headers=ops).status_code == 404
    sensor_made = {"site": SITE, "procedure": "gas_leak"}
    assert api.client.post(TICKETS, json=sensor_made, headers=ops).status_code == 422, "opened by its alarm only"


def test_a_snoozed_device_records_alarms_without_a_ticket_until_the_snooze_ends(api: Api) -> None:
    boss, ops = api.as_(Role.SUPERVISOR, "chen"), api.as_(Role.CONTROL_ROOM)
    device = "leak-b2-pump"
    body = {"site": SITE, "device": device, "reason": "pump room being cleaned"}
    assert (
        api.client.post(f"{ALARMS}/snoozes", json=body | {"minutes": 7 * 24 * 60 + 1}, headers=boss).status_code == 422
    )
    assert api.client.post(f"{ALARMS}/snoozes", json=body | {"reason": "  "}, headers=boss).status_code == 422
    assert api.client.post(f"{ALARMS}/snoozes", json=body | {"device": "nope"}, headers=boss).status_code == 404
    made = api.client.post(f"{ALARMS}/snoozes", json=body, headers=boss)
    assert made.status_code == 201, made.text
    snooze = made.json()
    assert datetime.fromisoformat(snooze["until"]) == T0 + timedelta(hours=24), "24 h by default"
    assert (snooze["created_by"], snooze["active"], snooze["device"]) == ("chen", True, device)
    api.reading(device, "w-1", "water_leak", wet=True)
    [alarm] = api.client.get(ALARMS, params={"device": device}, headers=ops).json()["items"]
    assert alarm["ticket_id"] is None and alarm["snoozed_until"] == snooze["until"]
    listed = api.client.get(f"{ALARMS}/snoozes", params={"active": True, "site": SITE}, headers=ops).json()
    assert [z["id"] for z in listed["items"]] == [snooze["id"]]
    api.rig.clock.advance(60)
    ended = api.client.delete(f"{ALARMS}/snoozes/{snooze['id']}", headers=ops)
    assert ended.status_code == 200 and ended.json()["active"] is False
    assert api.client.delete(f"{ALARMS}/snoozes/{snooze['id']}", headers=ops).status_code == 409
    assert api.client.delete(f"{ALARMS}/snoozes/999999", headers=ops).status_code == 404
    assert api.client.get(f"{ALARMS}/snoozes", params={"active": True}, headers=ops).json()["items"] == []
    assert api.client.get(f"{ALARMS}/snoozes", params={"device": device}, headers=ops).json()["items"][0]["reason"]


def test_sensor_readings_latest_and_history_and_the_procedures(api: Api) -> None:
    for i, level in enumerate((0.0, 2.5, 7.0)):
        api.reading(LEAK, f"r-{i}", "water_leak", wet=level > 5, level_mm=level)
        api.rig.clock.advance(60)
    h = api.as_(Role.ENGINEER)
    path = f"/api/v1/sensors/{SITE}/{LEAK}/readings"
    r = api.client.get(path, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["kind"], body["location"], body["name"]["zh"]) == (
        "water_leak",
        "B1-B01-PUMP",
        "1栋 生活水泵房 水浸传感器",
    )
    assert body["latest"]["values"] == {"wet": True, "level_mm": 7.0} and body["latest"]["msg_id"] == "r-2"
    assert [x["values"]["level_mm"] for x in body["items"]] == [7.0, 2.5, 0.0]
    assert datetime.fromisoformat(body["items"][-1]["at"]) == T0
    page = api.client.get(path, params={"limit": 2}, headers=h).json()
    older = api.client.get(path, params={"limit": 2, "before_id": page["next_before_id"]}, headers=h).json()
    assert [x["msg_id"] for x in older["items"]] == ["r-0"]
    since = (T0 + timedelta(seconds=30)).isoformat()
    assert [x["msg_id"] for x in api.client.get(path, params={"since": since}, headers=h).json()["items"]] == [
        "r-2",
        "r-1",
    ]
    assert api.client.get(f"/api/v1/sensors/{SITE}/nope/readings", headers=h).status_code == 404
    quiet = api.client.get(f"/api/v1/sensors/{SITE}/leak-b6-pw/readings", headers=h).json()
    assert quiet["latest"] is None and quiet["items"] == []

    procedures = api.client.get("/api/v1/procedures", headers=h).json()
    by_code = {p["code"]: p for p in procedures}
    assert len(by_code) == len(REQUIRED_PROCEDURES) and by_code["medical_emergency"]["manual"] is True
    lift = api.client.get("/api/v1/procedures/elevator_fault", headers=h).json()
    assert (lift["source"], lift["alarm_types"], lift["manual"]) == ("P5 §2.4.2", ["elevator"], False)
    [never] = [s for s in lift["steps"] if s["safety_critical"]]
    assert never["code"] == "never_force_doors" and never["text"]["zh"].startswith("切忌")
    assert api.client.get("/api/v1/procedures/nope", headers=h).status_code == 404


def test_notices_waiting_and_given_up_on_are_visible_to_operators(engine: Engine, db_url: str) -> None:
    """Issue 7 item 7: webhook failures are kept and visible — counted per target while they wait,
    listed with their last error once given up on; engineers do not see the robots' plumbing."""
    rig = make_rig(engine, db_url, now=T0, webhooks='[{"name": "ops", "url": "https://hooks.example/x"}]')
    client = make_client(engine)
    client.app.state.clock = rig.clock  # type: ignore[attr-defined]
    api = Api(rig, client, engine)
    api.reading(LEAK, "w-1", "water_leak", wet=True)  # alarm raised + ticket opened + escalated: 3 notices
    control = api.as_(Role.CONTROL_ROOM)
    summary = client.get("/api/v1/notifications/summary", headers=control).json()
    assert summary["pending"] == 3 and summary["failed"] == 0 and summary["targets"]["ops"]["pending"] == 3
    with transaction(session_factory(engine)) as s:
        first = s.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id).limit(1)).one()
        mark_failed(s, [first], "HTTP 500: robot down", rig.clock.now(), max_attempts=0)
    [failed] = client.get("/api/v1/notifications/failed", headers=control).json()
    assert (failed["id"], failed["target"], failed["last_error"]) == (first, "ops", "HTTP 500: robot down")
    assert failed["kind"] == "ticket_opened"  # the ticket is opened before the alarm is told
    after = client.get("/api/v1/notifications/summary", headers=control).json()
    assert (after["pending"], after["failed"]) == (2, 1)
    assert client.get("/api/v1/notifications/failed", headers=api.as_(Role.ENGINEER)).status_code == 403
