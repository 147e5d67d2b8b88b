"""WebSocket /api/v1/live pushes new sign-ins and device status changes, fed from the broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from starlette.websockets import WebSocketDisconnect

from core.clock import FakeClock
from core.config import Settings
from gateway.pipeline import Gateway
from server.auth import Role
from storage.sitefile.schema import SiteFile
from tests.support.api import make_client, token_for
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import Peer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]  # a WebSocket receive has no timeout of its own


def _next_of(ws: Any, kind: str, limit: int = 200) -> dict[str, Any]:
    for _ in range(limit):
        event: dict[str, Any] = ws.receive_json()
        if event.get("type") == kind:
            return event
    raise AssertionError(f"no {kind} event in {limit} events")


def test_live_feed_pushes_signins_and_status(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway, peer: Peer, demo_site: SiteFile
) -> None:
    settings = Settings(_env_file=None, mqtt_url=mosquitto.url)  # type: ignore[call-arg]
    tag = next(loc.tag for loc in demo_site.locations if loc.code == "B1-F01-LOBBY")
    with make_client(engine, settings, live_feed=True) as client:
        token = token_for(engine, client, Role.CONTROL_ROOM)["Authorization"].split()[1]
        with client.websocket_connect(f"/api/v1/live?token={token}&site=liyuan") as ws:
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


@pytest.mark.parametrize("role", [None, Role.ENGINEER])
def test_live_feed_refuses_without_token_or_role(engine: Engine, role: Role | None) -> None:
    client: TestClient = make_client(engine)
    token = token_for(engine, client, role)["Authorization"].split()[1] if role else "bogus"
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(f"/api/v1/live?token={token}") as ws:
        ws.receive_json()
    assert exc.value.code == 1008


def test_live_feed_ends_when_the_token_expires(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from server.api.routes import live

    monkeypatch.setattr(live, "POLL_S", 0.02)  # how often the route looks at the clock, in real time
    clock = FakeClock()
    with make_client(engine) as client:
        client.app.state.clock = clock  # type: ignore[attr-defined]
        token = token_for(engine, client, Role.CONTROL_ROOM)["Authorization"].split()[1]
        with client.websocket_connect(f"/api/v1/live?token={token}") as ws:
            assert ws.receive_json()["type"] == "hello"
            clock.advance(timedelta(hours=13))  # past the 12 h token lifetime (and the 30 s recheck)
            with pytest.raises(WebSocketDisconnect) as exc:
                ws.receive_json()
    assert exc.value.code == 1008


def test_stopping_the_live_feed_does_not_report_the_gateway_disconnected(
    mosquitto: MosquittoBroker, engine: Engine, gateway: Gateway
) -> None:
    """Defect on the spine: the live feed's own broker client set the gateway's connection gauge,
    so closing the API (or a feed reconnecting) showed the gateway as disconnected."""
    from prometheus_client import REGISTRY

    def connected() -> float | None:
        return REGISTRY.get_sample_value("patrol_gateway_broker_connected")

    assert connected() == 1.0
    settings = Settings(_env_file=None, mqtt_url=mosquitto.url)  # type: ignore[call-arg]
    with make_client(engine, settings, live_feed=True) as client:
        token = token_for(engine, client, Role.CONTROL_ROOM)["Authorization"].split()[1]
        with client.websocket_connect(f"/api/v1/live?token={token}") as ws:
            assert ws.receive_json()["type"] == "hello"
    # the app's lifespan has ended: its feed left the broker
    assert connected() == 1.0 and gateway.link.subscribed.is_set()


def test_what_is_not_an_out_event_is_counted_and_not_forwarded(
    mosquitto: MosquittoBroker, engine: Engine, peer: Peer
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
    settings = Settings(_env_file=None, mqtt_url=mosquitto.url)  # type: ignore[call-arg]
    try:
        with make_client(engine, settings, live_feed=True) as client:
            token = token_for(engine, client, Role.CONTROL_ROOM)["Authorization"].split()[1]
            with client.websocket_connect(f"/api/v1/live?token={token}") as ws:
                assert ws.receive_json()["type"] == "hello"
                peer.publish(real, status)  # in case the feed subscribed (and got the retained ones) before we joined
                assert ws.receive_json() == {**status, "site": "liyuan"}, "the fake came first or was forwarded"
                wait_until(lambda: ignored() == before + 1, what="the fake counted")
    finally:
        peer.publish(fake, b"", retain=True)
        peer.publish(real, b"", retain=True)
