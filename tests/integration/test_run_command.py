"""The README's run command, end to end: `patrol demo` on its embedded defaults shows sign-ins in the API
within seconds. Also `patrol user add`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from tests.support.mosquitto import free_port
from tests.support.mqtt import wait_until

pytestmark = pytest.mark.integration


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
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, log.read_text()[-3000:]


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
