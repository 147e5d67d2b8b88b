"""The gateway as a subprocess (`python -m app.cli gateway`), and where its memory and the machine's CPU go."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.mqtt_load import connect, end_session, login, new_client
from bench.progress import log
from core.broker_access import GATEWAY_ACCOUNT, LIVE_ACCOUNT, slow_lane_username
from tests.support.mosquitto import MosquittoBroker

REPO = Path(__file__).resolve().parent.parent


class GatewayProcess:
    """`python -m app.cli gateway` as production runs it, logging to a file, logged in with the gateway's
    account (the broker makes the client id the username)."""

    def __init__(self, broker: MosquittoBroker, db_url: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        """`env`: more PATROL_* settings for this run (e.g. PATROL_SLOW_LANE=false for a baseline)."""
        self.broker, self.db_url, self.log_path, self.env = broker, db_url, log_path, env or {}
        self.client_id = GATEWAY_ACCOUNT
        self.proc: subprocess.Popen[bytes] | None = None

    def broker_env(self) -> dict[str, str]:
        """The gateway's account, and the live feed's own (a `patrol serve` process has both clients: on one
        account the second login would take the first one's session over)."""
        return {
            "PATROL_MQTT_URL": self.broker.url_for(GATEWAY_ACCOUNT),
            "PATROL_MQTT_CLIENT_ID": self.client_id,
            "PATROL_MQTT_LIVE_USERNAME": LIVE_ACCOUNT,
            "PATROL_MQTT_LIVE_PASSWORD": self.broker.passwords[LIVE_ACCOUNT],
        }

    def start(self, timeout_s: float = 60.0) -> psutil.Process:
        env = {
            **os.environ,
            **self.broker_env(),
            "PATROL_DATABASE_URL": self.db_url,
            "PATROL_LOG_LEVEL": "INFO",
            **self.env,
        }
        with self.log_path.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "gateway"], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while "subscribed to" not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway not ready (exit code {self.proc.poll()}): {self.log_text()[-1500:]}")
            time.sleep(0.1)
        return psutil.Process(self.proc.pid)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def issues(self) -> Counter[str]:
        """Warning and error lines, counted by text without the timestamp (one may repeat 10^5 times)."""
        marks = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")
        lines = [line for line in self.log_text().splitlines() if any(m in line for m in marks)]
        return Counter(line.split(" ", 2)[-1] if line[:4].isdigit() else line for line in lines)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait (it finishes the batch in hand), then end its broker session, which
        would otherwise outlive it for a week and queue the next database's taps."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for account in (GATEWAY_ACCOUNT, slow_lane_username(GATEWAY_ACCOUNT)):  # its slow lane's session too
            try:
                client = new_client("gw-cleanup", client_id=account)
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = 0
                connect(client, login(self.broker, account), clean_start=True, properties=props)
                end_session(client)
            except (OSError, RuntimeError) as exc:
                log(f"could not end the gateway's broker session {account}: {exc}")
        return rc


class PeakRss(threading.Thread):
    """Samples a process's RSS every 0.1 s: peaks between two samples can be missed."""

    def __init__(self, proc: psutil.Process, max_s: float = 3600.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.proc, self.max_samples = proc, int(max_s / 0.1)
        self.first = self.peak = proc.memory_info().rss
        self.halt = threading.Event()

    def run(self) -> None:
        for _ in range(self.max_samples):
            if self.halt.wait(0.1):
                return
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass  # a PostgreSQL backend that ended: its time is lost, the figure is a lower bound
    return total


class CpuMeter:
    """Where the machine's CPU went during a run, in % of one core: on a small machine the bench,
    the broker and the database compete with the gateway, and the figures mean little without it."""

    def __init__(self, gateway: psutil.Process, broker: MosquittoBroker) -> None:
        postgres = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
        broker_procs = [psutil.Process(broker.proc.pid)] if broker.proc else []
        self.groups = {"gateway": [gateway], "broker": broker_procs, "postgres": postgres, "bench": [psutil.Process()]}
        self.start = {name: cpu_seconds(procs) for name, procs in self.groups.items()}
        self.machine_start = psutil.cpu_times()
        self.started = time.monotonic()

    def percent(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        out = {name: 100 * (cpu_seconds(procs) - self.start[name]) / wall for name, procs in self.groups.items()}
        end, begin = psutil.cpu_times(), self.machine_start
        busy = sum(end) - end.idle - end.iowait - (sum(begin) - begin.idle - begin.iowait)
        out["machine"] = 100 * busy / wall
        return out
