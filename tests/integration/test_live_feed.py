"""WebSocket /api/v1/live pushes new sign-ins and device status changes, fed from the broker.

The token comes in the first message, never in the URL (item 9); close codes: 4401 not logged in or
expired, 4403 revoked, disabled or forbidden, 1008 a token in the URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, update
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from core.broker_access import LIVE_ACCOUNT
from core.clock import FakeClock
from core.config import Settings
from gateway.pipeline import Gateway
from server.api.app import create_app
from server.auth import Role, set_active, set_password
from storage.db import session_factory, transaction
from storage.models import User
from storage.sitefile.schema import SiteFile
from tests.support.api import PASSWORD, add_user, make_client, serve_in_thread, token_for
from tests.support.mosquitto import MosquittoBroker, free_port
from tests.support.mqtt import SitePeers, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]  # a WebSocket receive has no timeout of its own


@contextmanager
def feed(client: TestClient, token: str, query: str = "") -> Iterator[Any]:
    """The live feed as a browser opens it: connect, then send the token as the first message."""
    with client.websocket_connect(f"/api/v1/live{query}") as ws:
        ws.send_json({"token": token})
        yield ws


def _bearer(engine: Engine, client: TestClient, role: Role) -> str:
    return token_for(engine, client, role)["Authorization"].split()[1]


def _next_of(ws: Any, kind: str, limit: int = 200) -> dict[str, Any]:
    for _ in range(limit):
        event: dict[str, Any] = ws.receive_json()
        if event.get("type") == kind:
            return event
    raise AssertionError(f"no {kind} event in {limit} events")


def test_live_feed_pushes_signins_and_status(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway, peer: SitePeers, demo_site: SiteFile
) -> None:
    settings = Settings(_env_file=None, mqtt_url=mosquitto.url_for(LIVE_ACCOUNT))  # type: ignore[call-arg]
    tag = next(loc.tag for loc in demo_site.locations if loc.code == "B1-F01-LOBBY")
    with (
        make_client(engine, settings, live_feed=True) as client,
        feed(client, _bearer(engine, client, Role.CONTROL_ROOM), "?site=liyuan") as ws,
    ):
        assert ws.receive_json()["type"] == "hello"
        peer.publish(
            "patrol/v1/liyuan/device/rdr-h02/status",
            {"ts": datetime.now(UTC).isoformat(), "online": True, "battery_pct": 64},
        )
        status = _next_of(ws, "device_status")
        assert (status["device"], status["online"], status["site"]) == ("rdr-h02", True, "liyuan")
        peer.publish("patrol/v1/liyuan/reader/rdr-h01/tap", {"id": "live-1", "ts": 1764288311250, "uid": tag})
        signin = _next_of(ws, "signin")
        assert (signin["checkpoint"], signin["guard"], signin["ok"]) == ("B1-F01-LOBBY", "G001", True)
        assert signin["checkpoint_name"] == {"zh": "1栋 1F 大堂", "en": "Building 1 1F lobby"}
    peer.publish("patrol/v1/liyuan/out/device/rdr-h02/status", b"", retain=True)


def test_a_batch_client_gets_its_events_in_arrays(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway, peer: SitePeers, demo_site: SiteFile
) -> None:
    """Issue 9: the web UI asks for arrays (`"batch": true`): every frame is an array of events (what
    waited for the client goes out together), each event as a one-per-frame client gets it, with its site."""
    settings = Settings(_env_file=None, mqtt_url=mosquitto.url_for(LIVE_ACCOUNT))  # type: ignore[call-arg]
    tags = [loc.tag for loc in demo_site.locations if loc.tag and loc.code.startswith("B1-SHOP1")][:3]
    with make_client(engine, settings, live_feed=True) as client, client.websocket_connect("/api/v1/live") as ws:
        ws.send_json({"token": _bearer(engine, client, Role.CONTROL_ROOM), "batch": True})
        assert ws.receive_json() == {"type": "hello", "user": "u-control_room", "batch": True}
        for n, tag in enumerate(tags):
            peer.publish("patrol/v1/liyuan/reader/rdr-h02/tap", {"id": f"batch-{n}", "ts": 1764288311250, "uid": tag})
        signins: list[dict[str, Any]] = []
        while len(signins) < len(tags):
            frame = ws.receive_json()
            assert isinstance(frame, list) and frame, f"a batch client got {frame!r}"
            signins += [e for e in frame if e["type"] == "signin"]
    assert sorted(e["tag_uid"] for e in signins) == sorted(tags)
    assert {e["site"] for e in signins} == {"liyuan"}


@pytest.mark.parametrize(("role", "code"), [(None, 4401), (Role.ENGINEER, 4403)])
def test_live_feed_refuses_without_token_or_role(engine: Engine, role: Role | None, code: int) -> None:
    client: TestClient = make_client(engine)
    token = _bearer(engine, client, role) if role else "bogus"
    with pytest.raises(WebSocketDisconnect) as exc, feed(client, token) as ws:
        ws.receive_json()
    assert exc.value.code == code


def test_live_feed_refuses_a_token_in_the_url(engine: Engine) -> None:
    """Item 9: a token in the URL lands in access logs; the feed refuses it and says how to send it."""
    client: TestClient = make_client(engine)
    token = _bearer(engine, client, Role.CONTROL_ROOM)
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(f"/api/v1/live?token={token}") as ws:
        ws.receive_json()
    assert exc.value.code == 1008 and "first message" in exc.value.reason


def test_live_feed_waits_for_the_token_only_so_long(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from server.api.routes import live

    monkeypatch.setattr(live, "AUTH_TIMEOUT_S", 0.05)
    client: TestClient = make_client(engine)
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect("/api/v1/live") as ws:
        ws.receive_json()
    assert exc.value.code == 4401


@pytest.fixture
def clocked(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, FakeClock]]:
    from server.api.routes import live

    monkeypatch.setattr(live, "POLL_S", 0.02)  # how often the route looks at the clock, in real time
    clock = FakeClock()
    with make_client(engine) as client:
        client.app.state.clock = clock  # type: ignore[attr-defined]
        yield client, clock


def test_live_feed_ends_with_4401_when_the_token_expires(engine: Engine, clocked: tuple[TestClient, FakeClock]) -> None:
    client, clock = clocked
    with feed(client, _bearer(engine, client, Role.CONTROL_ROOM)) as ws:
        assert ws.receive_json()["type"] == "hello"
        clock.advance(timedelta(hours=13))  # past the 12 h token lifetime
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_json()
    assert exc.value.code == 4401 and "expired" in exc.value.reason


def _logout(client: TestClient, engine: Engine, token: str) -> None:
    assert client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 204


def _in_db(change: Callable[[Any], Any]) -> Callable[[TestClient, Engine, str], None]:
    def run(_client: TestClient, engine: Engine, _token: str) -> None:
        with transaction(session_factory(engine)) as session:
            change(session)

    return run


REVOCATIONS = {
    "logout": _logout,
    "password changed": _in_db(lambda s: set_password(s, "u-control_room", "another long password")),
    "user disabled": _in_db(lambda s: set_active(s, "u-control_room", False)),
    "user deleted": _in_db(lambda s: s.execute(delete(User).where(User.username == "u-control_room"))),
    "role changed": _in_db(
        lambda s: s.execute(update(User).where(User.username == "u-control_room").values(role="engineer"))
    ),
}


@pytest.mark.parametrize("how", REVOCATIONS)
def test_live_feed_ends_with_4403_within_seconds_of_a_revocation(
    engine: Engine, clocked: tuple[TestClient, FakeClock], how: str
) -> None:
    """Item 9: a deleted user kept receiving for up to 30 s. Authorisation is checked every 5 s of the
    app's clock, and a revoked token ends the stream with its own code (not the expiry's)."""
    client, clock = clocked
    token = _bearer(engine, client, Role.CONTROL_ROOM)
    with feed(client, token) as ws:
        assert ws.receive_json()["type"] == "hello"
        REVOCATIONS[how](client, engine, token)
        clock.advance(5)
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_json()
    assert exc.value.code == 4403, exc.value.reason


def test_logout_revokes_only_that_token(engine: Engine) -> None:
    client = make_client(engine)
    add_user(engine, "li", Role.SUPERVISOR)
    first, second = (
        client.post("/api/v1/auth/token", json={"username": "li", "password": PASSWORD}).json()["access_token"]
        for _ in range(2)
    )
    _logout(client, engine, first)
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {first}"}).status_code == 401
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    assert client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {first}"}).status_code == 401


# ----------------------------------------------------------------------------- against a real server


@contextmanager
def ws_feed(base: str, token: str, query: str = "") -> Iterator[Connection]:
    with connect(base.replace("http://", "ws://") + f"/api/v1/live{query}", open_timeout=10) as ws:
        ws.send(f'{{"token": "{token}"}}')
        assert '"hello"' in str(ws.recv(timeout=10))
        yield ws


def test_a_client_that_leaves_is_noticed_though_its_filter_matches_nothing(engine: Engine) -> None:
    """Item 9: a client whose filter matched nothing was never noticed after it closed: it stayed
    subscribed and kept Ctrl-C waiting. The route now watches the socket's receive side."""
    app = create_app(Settings(_env_file=None), engine)  # type: ignore[call-arg]
    client = make_client(engine)
    token = _bearer(engine, client, Role.CONTROL_ROOM)
    with serve_in_thread(app) as base:
        with ws_feed(base, token, "?site=nowhere"):
            wait_until(lambda: app.state.hub.clients == 1, timeout=10, what="the client subscribed")
        wait_until(lambda: app.state.hub.clients == 0, timeout=5, what="the closed client noticed")


def test_ctrl_c_does_not_wait_for_a_connected_live_client(engine: Engine, db_url: str, tmp_path: Path) -> None:
    """Item 9 / 13: Ctrl-C hung while a live-feed client was connected (`patrol api`, as run in production)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    env.update(PATROL_DATABASE_URL=db_url, PATROL_API_PORT=str(port), PATROL_EMBEDDED_BROKER_PORT=str(free_port()))
    add_user(engine, "zhao", Role.CONTROL_ROOM)
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "api"], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx2

        def token() -> str | None:
            try:
                r = httpx2.post(f"{base}/api/v1/auth/token", json={"username": "zhao", "password": PASSWORD})
            except httpx2.HTTPError:
                return None
            return str(r.json()["access_token"]) if r.status_code == 200 else None

        with ws_feed(base, wait_until(token, timeout=60, what="the API up")) as ws:
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=15)
            stopped = time.monotonic() - started
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert stopped < 4.0, f"Ctrl-C took {stopped:.1f} s with a live client connected (the grace period is 5 s)"


def test_stopping_the_live_feed_does_not_report_the_gateway_disconnected(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway
) -> None:
    """Defect on the spine: the live feed's own broker client set the gateway's connection gauge,
    so closing the API (or a feed reconnecting) showed the gateway as disconnected."""
    from prometheus_client import REGISTRY

    def connected() -> float | None:
        return REGISTRY.get_sample_value("patrol_gateway_broker_connected")

    assert connected() == 1.0
    settings = Settings(_env_file=None, mqtt_url=mosquitto.url_for(LIVE_ACCOUNT))  # type: ignore[call-arg]
    with (
        make_client(engine, settings, live_feed=True) as client,
        feed(client, _bearer(engine, client, Role.CONTROL_ROOM)) as ws,
    ):
        assert ws.receive_json()["type"] == "hello"
    # the app's lifespan has ended: its feed left the broker
    assert connected() == 1.0 and gateway.link.subscribed.is_set()


def test_what_is_not_an_out_event_is_counted_and_not_forwarded(
    mosquitto: MosquittoBroker, engine: Engine, peer: SitePeers
) -> None:
    """Any client able to publish under out/ must not write into control-room screens. Retained, so
    the feed's subscriber gets the fake however late it subscribes, and before the real one."""
    from prometheus_client import REGISTRY

    def ignored() -> float:
        return REGISTRY.get_sample_value("patrol_live_events_ignored_total") or 0.0

    fake, real = "patrol/v1/liyuan/out/signins", "patrol/v1/liyuan/out/device/rdr-h05/status"
    status = {"type": "device_status", "device": "rdr-h05", "kind": "handheld_reader", "online": True,
              "status_at": "2026-11-28T08:00:00Z"}  # fmt: skip
    before = ignored()
    peer.publish(fake, b"<script>alert(1)</script>", retain=True)
    peer.publish(real, status, retain=True)
    settings = Settings(_env_file=None, mqtt_url=mosquitto.url_for(LIVE_ACCOUNT))  # type: ignore[call-arg]
    try:
        with (
            make_client(engine, settings, live_feed=True) as client,
            feed(client, _bearer(engine, client, Role.CONTROL_ROOM)) as ws,
        ):
            assert ws.receive_json()["type"] == "hello"
            peer.publish(real, status)  # in case the feed subscribed (and got the retained ones) before we joined
            assert ws.receive_json() == {**status, "site": "liyuan"}, "the fake came first or was forwarded"
            wait_until(lambda: ignored() == before + 1, what="the fake counted")
    finally:
        peer.publish(fake, b"", retain=True)
        peer.publish(real, b"", retain=True)
