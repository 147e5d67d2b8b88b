"""The API's edges (issue 6 item 10): parameters out of range, strict time filters, unknown
parameters, documented error answers, the body limit, security headers, no-store, local docs."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from core.config import Settings
from server.api.app import create_app
from server.api.middleware import MAX_BODY_BYTES
from server.auth import Role
from storage.db import session_factory, transaction
from storage.models import Device, InboundMessage, SignIn, Site
from tests.support.api import PASSWORD, make_client, token_for
from tests.support.mosquitto import free_port
from tests.support.mqtt import wait_until

pytestmark = pytest.mark.integration

ROUTES_WITH_TOKEN = [
    ("get", "/metrics"),
    ("get", "/api/v1/auth/me"),
    ("get", "/api/v1/sites"),
    ("get", "/api/v1/sites/{site}/buildings"),
    ("get", "/api/v1/sites/{site}/checkpoints"),
    ("get", "/api/v1/sites/{site}/devices"),
    ("get", "/api/v1/signins"),
    ("get", "/api/v1/quarantine"),
]


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return make_client(engine)


@pytest.fixture
def admin(engine: Engine, client: TestClient) -> dict[str, str]:
    return token_for(engine, client, Role.ADMIN)


def _details(r: httpx2.Response) -> str:
    return " ".join(str(d["msg"]) for d in r.json()["detail"])


# --- before_id: the BIGINT range -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/signins", "/api/v1/quarantine"])
@pytest.mark.parametrize("value", ["9223372036854775808", "-9223372036854775809", "0"])
def test_before_id_outside_bigint_is_422_not_500(
    client: TestClient, admin: dict[str, str], path: str, value: str
) -> None:
    r = client.get(path, params={"before_id": value}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", "before_id"]


def test_largest_bigint_before_id_is_answered(client: TestClient, admin: dict[str, str]) -> None:
    r = client.get("/api/v1/signins", params={"before_id": str(2**63 - 1)}, headers=admin)
    assert r.status_code == 200, r.text


# --- since / until: one strict time type -----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "0.5",  # was read as 1970-01-01T00:00:00.5Z
        "1764288311",  # epoch seconds
        "1764288311250",  # epoch milliseconds
        "2026-11-28T08:00:00",  # no offset: which zone?
        "2026-11-28 08:00",
        "yesterday",
        "2026-02-30",
    ],
)
@pytest.mark.parametrize("name", ["since", "until"])
def test_time_filter_refuses_what_it_cannot_read_unambiguously(
    client: TestClient, admin: dict[str, str], name: str, value: str
) -> None:
    r = client.get("/api/v1/signins", params={name: value}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", name]
    assert "RFC 3339 time with an offset" in _details(r) and "2026-11-28" in _details(r)


def _signin_at(engine: Engine, tapped_at: datetime) -> int:
    """A sign-in tapped at `tapped_at` on reader rdr-h01 of 荔园; its id."""
    with transaction(session_factory(engine)) as session:
        site = session.scalars(select(Site).where(Site.code == "liyuan")).one()
        device = session.scalars(select(Device).where(Device.code == "rdr-h01")).one()
        msg = InboundMessage(
            site_id=site.id,
            device_id=device.id,
            msg_id=f"edge-{tapped_at.isoformat()}",
            kind="tap",
            device_ts=tapped_at,
            received_at=tapped_at,
            payload="{}",
        )
        session.add(msg)
        session.flush()
        signin = SignIn(
            message_id=msg.id,
            site_id=site.id,
            device_id=device.id,
            tag_uid="04",
            tapped_at=tapped_at,
            received_at=tapped_at,
            ok=False,
            reason="unknown_tag",
        )
        session.add(signin)
        session.flush()
        return int(signin.id)


def test_time_filters_with_offsets_and_dates_in_the_site_zone(
    engine: Engine, client: TestClient, admin: dict[str, str]
) -> None:
    """A plain date is the whole day in the site's zone (荔园: Asia/Shanghai, UTC+8) when `site` is
    given, in UTC otherwise; an RFC 3339 time is the instant it names, whatever its offset."""
    late_utc = _signin_at(engine, datetime(2026, 11, 27, 17, 0, tzinfo=UTC))  # 11-28 01:00 in Shanghai
    noon = _signin_at(engine, datetime(2026, 11, 28, 4, 0, tzinfo=UTC))  # 11-28 12:00 in Shanghai

    def ids(**params: str) -> set[int]:
        r = client.get("/api/v1/signins", params=params, headers=admin)
        assert r.status_code == 200, r.text
        return {item["id"] for item in r.json()["items"]} & {late_utc, noon}

    assert ids(site="liyuan", since="2026-11-28", until="2026-11-28") == {late_utc, noon}
    assert ids(since="2026-11-28", until="2026-11-28") == {noon}  # UTC day: 17:00 on the 27th is outside
    assert ids(since="2026-11-28T01:00:00+08:00", until="2026-11-28T12:00:00+08:00") == {late_utc}
    assert ids(since="2026-11-28T04:00:00Z") == {noon}
    assert ids(until="2026-11-27T17:00:00.000001z") == {late_utc}


# --- unknown query parameters --------------------------------------------------------------------


def test_misspelt_filter_is_422_naming_the_accepted_ones(client: TestClient, admin: dict[str, str]) -> None:
    """`?gaurd=` used to answer the unfiltered list."""
    r = client.get("/api/v1/signins", params={"gaurd": "G001"}, headers=admin)
    assert r.status_code == 422
    assert "unknown query parameter 'gaurd'" in _details(r) and "guard" in _details(r)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/signins?site=%00",
        "/api/v1/quarantine?device=a%00b",
        "/api/v1/sites/%00/devices",
        "/api/v1/signins?gu%00ard=1",
    ],
)
def test_nul_in_a_parameter_is_422_not_500(client: TestClient, admin: dict[str, str], path: str) -> None:
    """PostgreSQL text cannot hold NUL: schemathesis found `?site=%00` answered with a 500."""
    r = client.get(path, headers=admin)
    assert r.status_code == 422, r.text
    assert "NUL" in _details(r)


def test_nul_in_the_login_name_is_422_not_500(client: TestClient) -> None:
    r = client.post("/api/v1/auth/token", json={"username": "a\u0000b", "password": "whatever it is"})
    assert r.status_code == 422, r.text


# --- the OpenAPI lists the errors ------------------------------------------------------------------


def test_openapi_documents_401_403_404_422(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for method, path in ROUTES_WITH_TOKEN:
        responses = paths[path][method]["responses"]
        assert {"401", "403", "422"} <= set(responses), (path, sorted(responses))
        assert responses["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorPublic"}
    for path in ("/api/v1/sites/{site}/buildings", "/api/v1/sites/{site}/devices"):
        assert "404" in paths[path]["get"]["responses"]
    token = paths["/api/v1/auth/token"]["post"]["responses"]
    assert {"400", "401", "413", "422"} <= set(token)
    assert "401" not in paths["/healthz"]["get"]["responses"]


# --- body limit -----------------------------------------------------------------------------------


def test_body_over_the_limit_is_413_by_content_length(client: TestClient) -> None:
    """A 50 MB login body was read whole; now its Content-Length alone refuses it."""
    body = b'{"username": "a", "password": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'
    r = client.post("/api/v1/auth/token", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "larger than" in r.json()["detail"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_body_at_the_limit_is_read(client: TestClient) -> None:
    padding = MAX_BODY_BYTES - len(b'{"username": "a", "password": "x", "pad": ""}')
    body = b'{"username": "a", "password": "x", "pad": "' + b"p" * padding + b'"}'
    assert len(body) == MAX_BODY_BYTES
    r = client.post("/api/v1/auth/token", content=body, headers={"content-type": "application/json"})
    assert r.status_code != 413


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def live_server(engine: Engine) -> Iterator[str]:
    """The app under uvicorn on 127.0.0.1: a chunked body needs a real HTTP server."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(_settings(), engine), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=15, what="uvicorn started")
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_streamed_body_over_the_limit_is_413_without_content_length(live_server: str) -> None:
    """Chunked transfer has no Content-Length: the limit holds while the body streams in."""
    host, port = live_server.split(":")
    chunk = b"x" * 8192
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for _ in range(MAX_BODY_BYTES // len(chunk) + 4):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before we finished: that is the point
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


# --- headers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/signins", "/openapi.json", "/docs", "/nope"])
def test_security_headers_on_every_answer(client: TestClient, admin: dict[str, str], path: str) -> None:
    r = client.get(path, headers=admin)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-eval" not in csp
    assert r.headers["cache-control"] == "no-store"


def test_token_response_is_no_store(engine: Engine, client: TestClient) -> None:
    token_for(engine, client, Role.CONTROL_ROOM)
    r = client.post("/api/v1/auth/token", json={"username": "u-control_room", "password": PASSWORD})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    wrong = client.post("/api/v1/auth/token", json={"username": "u-control_room", "password": "wrong password"})
    assert wrong.headers["cache-control"] == "no-store"


# --- docs served locally --------------------------------------------------------------------------


def test_swagger_ui_is_served_from_this_server_without_inline_script(client: TestClient) -> None:
    """Offline, a CDN-hosted Swagger UI was a blank page; under `script-src 'self'` an inline
    start-up script would be too. Every asset the page names is served here, with its type."""
    html = client.get("/docs").text
    assert "cdn." not in html and "http://" not in html and "https://" not in html
    assert "<script>" not in html  # every script is a file
    sources = [part.split('"')[1] for part in html.split("src=")[1:]] + [
        part.split('"')[1] for part in html.split("href=")[1:]
    ]
    assert any(s.endswith("swagger-ui-bundle.js") for s in sources) and any(s.endswith(".css") for s in sources)
    for src in sources:
        r = client.get(src)
        assert r.status_code == 200, src
        assert r.headers["content-type"].split(";")[0] in (
            "text/javascript",
            "application/javascript",
            "text/css",
            "image/png",
        )
    init = client.get("/docs/swagger-init.js").text
    assert "/openapi.json" in init and "SwaggerUIBundle" in init and "validatorUrl" in init
    repo = Path(__file__).parents[2]  # the bundle is big: it comes from a package, not vendored here
    assert not list(repo.glob("server/**/swagger-ui-bundle.js"))


def test_redoc_is_served_locally_too(client: TestClient) -> None:
    html = client.get("/redoc").text
    assert "https://" not in html and "http://" not in html
    assert client.get("/docs/assets/redoc.standalone.js").status_code == 200


def test_docs_assets_may_be_cached_but_answers_not(client: TestClient) -> None:
    assert "max-age" in client.get("/docs/assets/swagger-ui.css").headers["cache-control"]
    assert client.get("/openapi.json").headers["cache-control"] == "no-store"


def test_time_filter_far_bounds_are_answered(client: TestClient, admin: dict[str, str]) -> None:
    """The calendar's ends, shifted by an offset past year 1 or 9999, are its ends, not a 500."""
    for params in (
        {"since": "0001-01-01T00:00:00+14:00"},
        {"until": "9999-12-31T23:59:59-12:00"},
        {"until": "9999-12-31", "site": "liyuan"},
        {"since": "0001-01-01", "site": "liyuan"},
        {"since": "2026-12-31T23:59:60Z"},
    ):
        r = client.get("/api/v1/signins", params=params, headers=admin)
        assert r.status_code == 200, (params, r.text)
