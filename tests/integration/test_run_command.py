"""The README's run command, end to end: `patrol demo` on its embedded defaults shows sign-ins in the API
within seconds; a busy port stops it before anything starts (issue 6 item 13). Also `patrol user add`."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import create_engine, text

from tests.support.mosquitto import free_port
from tests.support.mqtt import wait_until

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    env.update({"PATROL_VAR_DIR": str(tmp_path / "var"), **extra})
    return env


def test_demo_serves_signins_within_seconds(tmp_path: Path) -> None:
    api_port, broker_port = free_port(), free_port()
    env = _clean_env(tmp_path, PATROL_API_PORT=str(api_port), PATROL_EMBEDDED_BROKER_PORT=str(broker_port))
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "demo"], env=env, stdout=out, stderr=out, cwd=tmp_path
        )
    try:
        password = wait_until(
            lambda: re.search(r"password '([^']+)'", log.read_text(errors="replace")),
            timeout=60,
            what="demo login printed",
        ).group(1)
        assert "an admin" in log.read_text(errors="replace")  # the demo login says what it may do
        base = f"http://127.0.0.1:{api_port}"

        def healthy() -> bool:
            try:
                return httpx2.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx2.HTTPError:
                return False

        wait_until(healthy, timeout=60, what="API up")
        token = httpx2.post(f"{base}/api/v1/auth/token", json={"username": "demo", "password": password}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}

        def signins() -> list[dict[str, object]]:
            items: list[dict[str, object]] = httpx2.get(f"{base}/api/v1/signins", headers=headers).json()["items"]
            return items

        items = wait_until(signins, timeout=30, what="simulated sign-ins in the API")
        assert items[0]["ok"] is True and str(items[0]["device"]).startswith("rdr-h")
        assert (tmp_path / "var" / "patrol.db").exists()
        wrong = _readme_token_command(api_port, "not the password")
        assert wrong.returncode != 0 and "Traceback" not in wrong.stderr, wrong.stderr
        assert "login failed: wrong user name or password" in wrong.stderr and wrong.stdout == ""
        right = _readme_token_command(api_port, password)
        assert right.returncode == 0 and right.stdout.strip() and not right.stderr, right.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, log.read_text()[-3000:]
    startup = log.read_text(errors="replace")
    # the demo opens the database twice (demo, then serve): alembic's preamble used to be logged twice
    assert "Context impl" not in startup and "Will assume" not in startup
    assert startup.count("database schema is at the newest revision") == 1, startup[:3000]


def _readme_token_command(api_port: int, password: str) -> subprocess.CompletedProcess[str]:
    """The README's `TOKEN=$(curl …)` one-liner as written there, for this API port and password."""
    block = re.search(r"^TOKEN=\$\(curl.*?'\)\n", README.read_text(), flags=re.S | re.M)
    assert block, "the README's token one-liner"
    command = block.group(0).replace("127.0.0.1:8000", f"127.0.0.1:{api_port}").replace("<printed password>", password)
    return subprocess.run(
        ["bash", "-c", command + 'status=$?; printf %s "$TOKEN"; exit $status'],
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def _listening(port: int) -> Iterator[None]:
    """Something else listening on 127.0.0.1:`port` for the duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


def _demo_password_hash(tmp_path: Path) -> str | None:
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'patrol.db'}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT password_hash FROM users WHERE username = 'demo'")).scalar()
    finally:
        engine.dispose()


@pytest.mark.parametrize(("busy", "variable"), [("api", "PATROL_API_PORT"), ("broker", "PATROL_EMBEDDED_BROKER_PORT")])
def test_demo_on_a_busy_port_stops_before_anything_starts(tmp_path: Path, busy: str, variable: str) -> None:
    """Issue 6 item 13: the busy port used to be found after the broker, gateway and simulator had
    started and the demo password had been reset. Now: an error naming the port and the variable,
    exit 2, nothing started, the demo password as it was."""
    api_port, broker_port = free_port(), free_port()
    env = _clean_env(tmp_path, PATROL_API_PORT=str(api_port), PATROL_EMBEDDED_BROKER_PORT=str(broker_port))
    known = "the known demo password"
    add = [sys.executable, "-m", "app.cli", "user", "add", "demo", "--role", "admin", "--password-stdin"]
    subprocess.run(
        add, env=env, input=known + "\n", text=True, check=True, capture_output=True, timeout=60, cwd=tmp_path
    )
    before = _demo_password_hash(tmp_path)
    port = api_port if busy == "api" else broker_port
    with _listening(port):
        run = subprocess.run(
            [sys.executable, "-m", "app.cli", "demo"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"port {port} on 127.0.0.1 is in use" in run.stderr and variable in run.stderr
    assert "Nothing was started" in run.stderr
    everything = run.stdout + run.stderr
    assert "Demo login" not in everything and "listening" not in everything and "gateway" not in everything.lower()
    assert _demo_password_hash(tmp_path) == before
    if busy == "api":  # the broker's port was never taken
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", broker_port)) != 0


def test_user_add_then_login_and_duplicates_refused(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    cmd = [sys.executable, "-m", "app.cli", "user", "add", "li.na", "--role", "supervisor", "--password-stdin"]
    first = subprocess.run(
        cmd, env=env, input="a long password\n", capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert first.returncode == 0 and "role supervisor" in first.stdout
    again = subprocess.run(
        cmd, env=env, input="a long password\n", capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    short = subprocess.run(
        [*cmd[:5], "wu", *cmd[6:]], env=env, input="short\n", capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert short.returncode == 1 and "at least 8" in short.stderr
