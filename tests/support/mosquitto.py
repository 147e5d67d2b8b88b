"""A private Mosquitto (the Debian package) on a free port in a temp dir, started by the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoBroker:
    def __init__(self, allow_anonymous: bool = True) -> None:
        if not Path(MOSQUITTO).exists():
            raise RuntimeError("mosquitto is not installed: run `apt-get install mosquitto` (.ci/run does)")
        self.dir = Path(tempfile.mkdtemp(prefix="patrol-mosquitto-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    f"allow_anonymous {'true' if allow_anonymous else 'false'}",
                    "persistence true",
                    f"persistence_location {self.dir}/",
                    "autosave_interval 1",
                    "max_queued_messages 1000000",
                    "max_inflight_messages 0",
                    "max_packet_size 1048576",
                    f"log_dest file {self.dir}/mosquitto.log",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    *(["user root"] if os.geteuid() == 0 else []),
                    "",
                ]
            )
        )
        self.conf = conf

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        log = (self.dir / "mosquitto.log").read_text() if (self.dir / "mosquitto.log").exists() else ""
        raise RuntimeError(f"mosquitto did not start on port {self.port}: {log[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
