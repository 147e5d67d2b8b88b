"""A private Mosquitto (the Debian package) on a free port in a temp dir, started by the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from app.broker_accounts import BrokerFiles, provision
from core.broker_access import Account, Rule

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SHIPPED_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


def shipped_config(port: int, health_port: int, access_dir: Path, data_dir: Path) -> str:
    """deploy/mosquitto/mosquitto.conf with only what a test must change: ports on 127.0.0.1, file
    paths, logging. Every access rule (anonymous, password/ACL files, client ids, sizes) is kept."""
    health_acl = SHIPPED_CONF.parent / "health.acl"
    swaps = {
        "listener 1883 0.0.0.0": f"listener {port} 127.0.0.1",
        "listener 1880 127.0.0.1": f"listener {health_port} 127.0.0.1",
        "password_file /mosquitto/config/access/passwd": f"password_file {access_dir / 'passwd'}",
        "acl_file /mosquitto/config/access/acl": f"acl_file {access_dir / 'acl'}",
        "acl_file /mosquitto/config/health.acl": f"acl_file {health_acl}",
        "persistence_location /mosquitto/data/": f"persistence_location {data_dir}/",
        "log_dest stdout": f"log_dest file {data_dir}/mosquitto.log",
    }
    lines = [swaps.pop(line.strip(), line) for line in SHIPPED_CONF.read_text().splitlines()]
    if swaps:
        raise AssertionError(f"deploy/mosquitto/mosquitto.conf changed: update shipped_config() for {list(swaps)}")
    return "\n".join([*lines, *(["user root"] if os.geteuid() == 0 else []), ""])


def credentialed_url(port: int, username: str, password: str) -> str:
    return f"mqtt://{quote(username, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}"


class MosquittoBroker:
    """`MosquittoBroker(accounts=...)`: the shipped configuration (no anonymous access, the ACL, the client
    id bound to the username, the 16 KiB limit), with those accounts provisioned as `patrol device provision`
    does; `url_for(username)` logs in as one. `MosquittoBroker()`: an open broker without any of those
    rules, only for a test that needs one and says why (a site's own broker, say)."""

    def __init__(self, accounts: Sequence[Account] | None = None) -> None:
        if not Path(MOSQUITTO).exists():
            raise RuntimeError("mosquitto is not installed: run `apt-get install mosquitto` (.ci/run does)")
        self.dir = Path(tempfile.mkdtemp(prefix="patrol-mosquitto-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.passwords: dict[str, str] = {}
        self.rules: dict[str, tuple[Rule, ...]] = {}  # username → what the ACL lets it do
        conf = self.dir / "mosquitto.conf"
        if accounts is not None:
            files = BrokerFiles(self.dir / "access")
            self.passwords = provision(files, accounts).passwords
            self.rules = {a.username: a.rules for a in accounts}
            conf.write_text(shipped_config(self.port, free_port(), files.directory, self.dir))
            self.conf = conf
            return
        conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
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
        """Anonymous: only an open broker (`MosquittoBroker()`) lets it in; use `url_for` otherwise."""
        return f"mqtt://127.0.0.1:{self.port}"

    def url_for(self, username: str, password: str | None = None) -> str:
        """A URL that logs in as a provisioned account (or with the password given)."""
        return credentialed_url(self.port, username, self.passwords[username] if password is None else password)

    def cli_login(self, username: str) -> list[str]:
        """`mosquitto_pub`/`mosquitto_sub` options that log in as a provisioned account (on 127.0.0.1 only; the
        password is a per-run random one, so its showing in the process list gives nothing away)."""
        return ["-h", "127.0.0.1", "-p", str(self.port), "-u", username, "-P", self.passwords[username]]

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
