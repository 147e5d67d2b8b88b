"""Item 8, the login flood: 429 with Retry-After per user name and per client address, a lockout
that doubles, and password hashing in a bounded pool that leaves the rest of the API responsive."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx2
import pytest
from argon2.exceptions import VerificationError
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from core.clock import FakeClock
from core.config import Settings
from server import auth
from server.api.app import create_app
from server.auth import Role
from tests.support.api import PASSWORD, add_user, make_client, serve_in_thread
from tests.support.mqtt import wait_until

pytestmark = pytest.mark.integration

WRONG = "not the password"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(engine: Engine, clock: FakeClock) -> TestClient:
    add_user(engine, "wang", Role.CONTROL_ROOM)
    settings = Settings(_env_file=None, login_refusal_delay_ms=0, login_hashes_per_second=1000)  # type: ignore[call-arg]
    c = make_client(engine, settings)
    c.app.state.clock = clock  # type: ignore[attr-defined]
    return c


def _login(client: TestClient, password: str, username: str = "wang") -> httpx2.Response:
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def test_wrong_passwords_for_one_user_get_429_with_retry_after(client: TestClient) -> None:
    """The 5th wrong password in a row locks the user name; then even the right one is refused without a hash."""
    assert [_login(client, WRONG).status_code for _ in range(5)] == [401] * 5
    refused = _login(client, PASSWORD)
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "1"
    assert "try again in 1 s" in refused.json()["detail"]


def test_the_lockout_doubles_with_each_further_failure(client: TestClient, clock: FakeClock) -> None:
    for _ in range(5):
        _login(client, WRONG)
    waits = []
    for _ in range(4):
        r = _login(client, WRONG)
        assert r.status_code == 429
        waits.append(int(r.headers["retry-after"]))
        clock.advance(waits[-1])
        assert _login(client, WRONG).status_code == 401, "after the wait one more try is allowed"
    assert waits == [1, 2, 4, 8]


def test_the_right_password_is_refused_until_the_lockout_ends(client: TestClient, clock: FakeClock) -> None:
    for _ in range(7):  # locked 1 s after the 5th, then 2 s and 4 s: each try waits out the previous lockout
        if _login(client, WRONG).status_code == 429:
            clock.advance(int(_login(client, WRONG).headers["retry-after"]))
            assert _login(client, WRONG).status_code == 401
    wait = int(_login(client, PASSWORD).headers["retry-after"])
    assert wait >= 4
    clock.advance(wait - 1)
    assert _login(client, PASSWORD).status_code == 429, "one second before the end it is still locked"
    clock.advance(1)
    assert _login(client, PASSWORD).status_code == 200
    assert [_login(client, WRONG).status_code for _ in range(4)] == [401] * 4, "a login starts the count again"


def test_one_address_guessing_many_names_is_limited(client: TestClient) -> None:
    """20 failures from one client address lock the address, whatever names it tries next."""
    statuses = [_login(client, WRONG, username=f"guess-{i}").status_code for i in range(20)]
    assert statuses == [401] * 20
    refused = _login(client, PASSWORD)  # a real user, the right password, the same address
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"


def test_oversized_credentials_are_refused_before_hashing(client: TestClient) -> None:
    assert _login(client, "x" * 5000).status_code == 422
    assert _login(client, WRONG, username="n" * 65).status_code == 422


def test_refusals_are_answered_late_and_a_login_is_not(engine: Engine) -> None:
    """A client that ignores Retry-After gets at most one refusal per connection per delay, so refusals
    cannot be turned into a flood of cheap requests (real time: the delay paces the network, it is not a rule)."""
    add_user(engine, "wang", Role.CONTROL_ROOM)
    client = make_client(engine, Settings(_env_file=None, login_refusal_delay_ms=300))  # type: ignore[call-arg]
    started = time.monotonic()
    assert _login(client, WRONG).status_code == 401
    assert time.monotonic() - started >= 0.3
    assert _login(client, PASSWORD).status_code == 200


# ----------------------------------------------------------------------------- a real server under a flood


@pytest.fixture
def live_server(engine: Engine) -> Iterator[str]:
    """The app under uvicorn on 127.0.0.1, limits high enough that every login is hashed: the pool alone
    must keep the server responsive."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        login_hash_workers=1,
        login_hash_queue=2,
        login_lockout_after_user_failures=10**6,
        login_lockout_after_address_failures=10**6,
    )
    with serve_in_thread(create_app(settings, engine)) as url:
        yield url


class BlockingHasher:
    """Stands in for argon2: every verification waits until the test lets it go, so the test sees
    exactly how many run at once and what the server does meanwhile."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def verify(self, _hash: str, _password: str) -> bool:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.release.wait(30)
        with self._lock:
            self.running -= 1
        raise VerificationError("wrong password")

    def hash(self, password: str) -> str:
        return "not-a-hash"

    def check_needs_rehash(self, _hash: str) -> bool:
        return False


def test_healthz_answers_while_64_logins_wait_for_their_hash(
    engine: Engine, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 8: 64 parallel failed logins made /healthz take 8–12 s: each login held a request thread
    while it hashed. Now at most one hash runs (one worker), two more wait, the other 61 are refused
    at once with 429 and Retry-After: 1, and /healthz answers while the hashes are still running."""
    add_user(engine, "wang", Role.CONTROL_ROOM)
    hasher = BlockingHasher()
    monkeypatch.setattr(auth, "_hasher", hasher)
    statuses: Counter[int] = Counter()
    retry_after: set[str | None] = set()
    details: set[str] = set()
    lock = threading.Lock()

    def attempt() -> None:
        # verify=False: plain HTTP on 127.0.0.1, and a TLS context costs ~0.3 s of CPU per client
        with httpx2.Client(base_url=live_server, timeout=60, verify=False) as c:
            r = c.post("/api/v1/auth/token", json={"username": "wang", "password": WRONG})
        with lock:
            statuses[r.status_code] += 1
            if r.status_code == 429:
                retry_after.add(r.headers.get("retry-after"))
                details.add(r.json()["detail"].split(":")[0])

    threads = [threading.Thread(target=attempt, daemon=True) for _ in range(64)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: statuses[429] == 61 and hasher.running == 1, timeout=30, what="61 logins refused")
        started = time.monotonic()
        health = httpx2.get(f"{live_server}/healthz", timeout=10)
        assert health.status_code == 200 and time.monotonic() - started < 2.0
        assert hasher.running == 1, "the hashes were still running while /healthz answered"
    finally:
        hasher.release.set()
        for t in threads:
            t.join(30)
    assert statuses == Counter({429: 61, 401: 3}), statuses
    assert retry_after == {"1"} and details == {"too many logins are being checked right now"}
    assert hasher.most == 1
