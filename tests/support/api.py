"""An API client for tests: the real app on the test database, with a logged-in user per role."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.wiring import live_source
from core.config import Settings
from server.api.app import create_app
from server.auth import Role, create_user
from storage.db import session_factory, transaction
from tests.support.mosquitto import free_port
from tests.support.mqtt import wait_until

PASSWORD = "correct horse battery"


def make_client(engine: Engine, settings: Settings | None = None, live_feed: bool = False) -> TestClient:
    """The app on the test database; with `live_feed`, fed from the broker in `settings` as `patrol` wires it."""
    # refused logins answered at once: tests that log in wrongly must not wait the 1 s pacing (its own test sets it)
    cfg = settings or Settings(_env_file=None, login_refusal_delay_ms=0)  # type: ignore[call-arg]
    app = create_app(cfg, engine, live_feed=live_source(cfg) if live_feed else None)
    return TestClient(app)


def add_user(engine: Engine, username: str, role: Role) -> None:
    with transaction(session_factory(engine)) as session:
        create_user(session, username, PASSWORD, role, None, datetime.now(UTC))


def login(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def token_for(engine: Engine, client: TestClient, role: Role) -> dict[str, str]:
    add_user(engine, f"u-{role.value}", role)
    return login(client, f"u-{role.value}")


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """The app under a real uvicorn on 127.0.0.1 (a free port), in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=20, what="uvicorn started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
