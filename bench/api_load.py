"""`patrol serve` as a subprocess (gateway and API in one process), a login flood from its own
process, and a /healthz probe: the HTTP side of the login-flood bench."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import psutil

from bench.gateway_process import REPO, GatewayProcess
from tests.support.mosquitto import MosquittoBroker, free_port

USER, PASSWORD = "bench-admin", "bench password not secret"


class ServeProcess(GatewayProcess):
    """`python -m app.cli serve`: the gateway and the API in one process, as `patrol serve` runs."""

    def __init__(self, broker: MosquittoBroker, db_url: str, log_path: Path, extra_env: dict[str, str]) -> None:
        super().__init__(broker, db_url, log_path)
        self.api_port = free_port()
        self.extra_env = extra_env

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, timeout_s: float = 60.0) -> psutil.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
        env.update(
            **self.broker_env(),
            PATROL_DATABASE_URL=self.db_url,
            PATROL_API_PORT=str(self.api_port),
            PATROL_LOG_LEVEL="WARNING",  # INFO would log one access line per refused login
            **self.extra_env,
        )
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve"], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"patrol serve not ready (exit code {self.proc.poll()}): {self.log_text()[-1500:]}")
            time.sleep(0.2)
        return psutil.Process(self.proc.pid)

    def _healthy(self) -> bool:
        try:
            return httpx2.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except httpx2.HTTPError:
            return False


# ----------------------------------------------------------------------------- the flood (its own process)


def flood_process(port: int, clients: int, seconds: float, results: Any) -> None:
    """Child process: `clients` keep-alive connections post wrong passwords back to back for
    `seconds`, ignoring Retry-After as an attacker would; puts (status counts, response times in ms, % of a core)
    on `results` with its own CPU use. Raw HTTP/1.1 on asyncio: the attacker must cost this machine little CPU, or the
    bench would measure the attacker (a real one runs elsewhere)."""
    statuses: Counter[str] = Counter()
    times: list[float] = []
    started, cpu = time.monotonic(), time.process_time()
    asyncio.run(_flood(port, clients, seconds, statuses, times))
    cpu_pct = 100 * (time.process_time() - cpu) / (time.monotonic() - started)
    results.put((dict(statuses), sorted(times), cpu_pct))


async def _flood(port: int, clients: int, seconds: float, statuses: Counter[str], times: list[float]) -> None:
    deadline = time.monotonic() + seconds

    async def attacker(n: int) -> None:
        body = json.dumps({"username": USER if n % 2 else f"guess-{n}", "password": "wrong password"}).encode()
        request = (
            f"POST /api/v1/auth/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(100_000):  # bounded in count as well as in time
                if time.monotonic() >= deadline:
                    return
                started = time.monotonic()
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                lines = head.lower().split(b"\r\n")
                length = next((int(x.split(b":", 1)[1]) for x in lines if x.startswith(b"content-length:")), 0)
                body_back = await reader.readexactly(length)
                code = head.split(b" ", 2)[1].decode()
                statuses[f"{code} busy" if b"being checked" in body_back else code] += 1
                times.append(1000 * (time.monotonic() - started))
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            statuses["error"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(attacker(n) for n in range(clients)))


class HealthProbe(threading.Thread):
    """GET /healthz every 0.1 s; the response times in ms (a timeout counts as 10 s)."""

    def __init__(self, base: str, max_s: float) -> None:
        super().__init__(name="healthz-probe", daemon=True)
        self.base, self.max_samples = base, int(max_s / 0.1)
        self.times: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx2.Client(base_url=self.base, timeout=10, verify=False) as client:
            for _ in range(self.max_samples):
                started = time.monotonic()
                try:
                    client.get("/healthz")
                    self.times.append(1000 * (time.monotonic() - started))
                except httpx2.HTTPError:
                    self.times.append(10_000.0)
                if self.halt.wait(0.1):
                    return
