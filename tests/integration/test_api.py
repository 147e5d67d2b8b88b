"""The REST API on a real database: tokens, roles, the site model, sign-in filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from core.clock import FakeClock
from server.auth import Role
from storage.db import session_factory, transaction
from storage.models import Device, InboundMessage, Location, SignIn, Site, Staff
from tests.support.api import PASSWORD, add_user, login, make_client, token_for

pytestmark = pytest.mark.integration

PROTECTED = [
    "/api/v1/sites",
    "/api/v1/sites/liyuan/buildings",
    "/api/v1/sites/liyuan/checkpoints",
    "/api/v1/sites/liyuan/devices",
    "/api/v1/signins",
    "/api/v1/quarantine",
    "/metrics",
    "/api/v1/auth/me",
]


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return make_client(engine)


def test_healthz_needs_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("path", PROTECTED)
def test_no_token_or_bad_token_is_401(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    r = client.get(path, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("role", "path", "code"),
    [
        (Role.GUARD, "/api/v1/signins", 403),
        (Role.ENGINEER, "/api/v1/signins", 403),
        (Role.ENGINEER, "/api/v1/quarantine", 403),
        (Role.MANAGER, "/api/v1/quarantine", 403),
        (Role.GUARD, "/metrics", 403),
        (Role.GUARD, "/api/v1/sites", 200),
        (Role.CONTROL_ROOM, "/api/v1/signins", 200),
        (Role.SUPERVISOR, "/api/v1/quarantine", 200),
        (Role.MANAGER, "/api/v1/signins", 200),
        (Role.ADMIN, "/api/v1/quarantine", 200),
    ],
)
def test_roles(engine: Engine, client: TestClient, role: Role, path: str, code: int) -> None:
    r = client.get(path, headers=token_for(engine, client, role))
    assert r.status_code == code, r.text
    if code == 403:
        assert "may not" in r.json()["detail"]


def test_wrong_password_and_expired_token(engine: Engine) -> None:
    clock = FakeClock()
    client = make_client(engine)
    client.app.state.clock = clock  # type: ignore[attr-defined]
    add_user(engine, "wang", Role.CONTROL_ROOM)
    assert client.post("/api/v1/auth/token", json={"username": "wang", "password": "nope"}).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "nobody", "password": PASSWORD}).status_code == 401
    headers = login(client, "wang")
    assert client.get("/api/v1/auth/me", headers=headers).json()["role"] == "control_room"
    clock.advance(timedelta(hours=13))
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401


def test_site_model(engine: Engine, client: TestClient) -> None:
    h = token_for(engine, client, Role.GUARD)
    [site] = client.get("/api/v1/sites", headers=h).json()
    assert site["code"] == "liyuan" and site["name"] == {"zh": "荔园", "en": "Lychee Garden"}
    assert site["buildings"] >= 6 and site["checkpoints"] >= 150
    buildings = client.get("/api/v1/sites/liyuan/buildings", headers=h).json()
    assert all(b["floors_above"] >= 18 for b in buildings)
    checkpoints = client.get("/api/v1/sites/liyuan/checkpoints", headers=h).json()
    lobby = next(c for c in checkpoints if c["code"] == "B1-F01-LOBBY")
    assert (lobby["building"], lobby["floor"], lobby["tag_uid"]) == ("B1", "1F", "04B5B0C8DAAEB8")
    gas = client.get("/api/v1/sites/liyuan/devices", params={"kind": "gas"}, headers=h).json()
    assert gas and all(d["kind"] == "gas" and d["location"] for d in gas)
    assert client.get("/api/v1/sites/nowhere/devices", headers=h).status_code == 404


def _signin(engine: Engine, msg_id: str, guard: str, checkpoint: str, at: datetime, ok: bool = True) -> None:
    with transaction(session_factory(engine)) as s:
        site = s.scalars(select(Site)).one()
        device = s.scalars(select(Device).where(Device.code == "rdr-h01")).one()
        staff = s.scalars(select(Staff).where(Staff.code == guard)).one()
        loc = s.scalars(select(Location).where(Location.code == checkpoint)).one()
        msg = InboundMessage(
            site_id=site.id,
            device_id=device.id,
            msg_id=msg_id,
            kind="tap",
            device_ts=at,
            received_at=at,
            payload="{}",
        )
        s.add(msg)
        s.flush()
        s.add(
            SignIn(
                message_id=msg.id,
                site_id=site.id,
                device_id=device.id,
                guard_id=staff.id,
                location_id=loc.id,
                tag_uid="04",
                tapped_at=at,
                received_at=at,
                ok=ok,
                reason=None if ok else "unknown_tag",
            )
        )


def test_signin_filters_and_paging(engine: Engine, client: TestClient) -> None:
    t0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    _signin(engine, "a", "G001", "B1-F01-LOBBY", t0)
    _signin(engine, "b", "G002", "B1-F01-LOBBY", t0 + timedelta(minutes=5))
    _signin(engine, "c", "G001", "B1-F01-TEL", t0 + timedelta(minutes=10), ok=False)
    h = token_for(engine, client, Role.SUPERVISOR)

    def ids(**params: str | int | bool) -> list[str]:
        return [i["message_id"] for i in client.get("/api/v1/signins", params=params, headers=h).json()["items"]]

    assert ids() == ["c", "b", "a"]
    assert ids(guard="G001") == ["c", "a"]
    assert ids(checkpoint="B1-F01-LOBBY") == ["b", "a"]
    assert ids(ok=False) == ["c"]
    assert ids(since="2026-11-28T08:04:00Z", until="2026-11-28T08:09:00Z") == ["b"]
    assert ids(site="elsewhere") == []
    page = client.get("/api/v1/signins", params={"limit": 2}, headers=h).json()
    assert [i["message_id"] for i in page["items"]] == ["c", "b"]
    assert ids(before_id=page["next_before_id"]) == ["a"]
    one = client.get("/api/v1/signins", params={"limit": 1}, headers=h).json()["items"][0]
    assert one["guard_name"]["zh"] and one["checkpoint_name"]["en"] == "Building 1 1F telecom room"


def test_openapi_names_roles_for_each_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for op in ops.values():
            if path != "/healthz" and not path.endswith("/auth/token"):
                assert "Roles:" in op["summary"], path
