"""A private VictoriaMetrics (the Debian package) on a free port, standing in for InfluxDB v2 in tests.

No InfluxDB 2.x server is installable here; VictoriaMetrics accepts influxdb-client's writes on
`/api/v2/write` (bucket and org ignored) and gives them back through `/api/v1/export` as series named
`measurement_field`, with timestamps in ms and string fields stored as 0. It is started with
`-dedup.minScrapeInterval=1ms` so that, like InfluxDB, a point written twice (same series, same ms)
is one sample, and with a long retention so that tests may use fixed past timestamps (by default it
drops samples older than a month as `small_timestamp`, silently).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support.mosquitto import free_port
from tests.support.processes import stop

VICTORIA = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"


def require_victoria() -> str:
    """The binary's path; skips the calling test when it is not installed (and only then)."""
    if not Path(VICTORIA).exists():
        pytest.skip("victoria-metrics is not installed: run `apt-get install victoria-metrics` (.ci/run does)")
    return VICTORIA


@dataclass(frozen=True)
class Series:
    """One exported series: `name` is `measurement_field`, `labels` the tags."""

    name: str
    labels: dict[str, str]
    values: list[float]
    timestamps: list[int]  # ms since the epoch

    @property
    def samples(self) -> list[tuple[int, float]]:
        return sorted(zip(self.timestamps, self.values, strict=True))


class VictoriaMetrics:
    """`start()` / `stop()` / `start()` again keep the port and the data dir, so a test can take the
    server down and bring it back with what it had stored; `pause()` freezes it (SIGSTOP) so that
    connections are accepted by the kernel but never answered, as a hung server does."""

    def __init__(self, data_dir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.binary = require_victoria()
        self.extra_args = extra_args
        self.dir = data_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10) -> None:
        log = (self.dir / "victoria.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"-storageDataPath={self.dir / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-retentionPeriod=100y",
                "-dedup.minScrapeInterval=1ms",
                "-loggerLevel=WARN",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self._healthy():
                return
            time.sleep(0.05)
        self.stop()
        tail = (self.dir / "victoria.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"victoria-metrics did not answer /health on port {self.port}: {tail}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as r:
                return bool(r.status == 200)
        except urllib.error.HTTPError:
            return True  # it answers, with its HTTP auth (-httpAuth.*) refusing us: it is up
        except (urllib.error.URLError, OSError):
            return False

    def pause(self) -> None:
        assert self.proc is not None, "start() first"
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None, "start() first"
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM (it flushes what it holds), then SIGKILL if it has not exited in 10 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        stop(self.proc)
        self.proc = None

    def export(self, match: str = '{__name__=~"gas_.*"}') -> list[Series]:
        """Every stored sample of the series matching `match`, read through `/api/v1/export` after a flush
        (so what was just written is visible), sorted by name and labels."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5) as r:
            r.read()
        query = urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=5) as r:
            lines = r.read().decode().splitlines()
        series = []
        for line in filter(None, lines):
            row = json.loads(line)
            labels = dict(row["metric"])
            name = labels.pop("__name__")
            series.append(Series(name, labels, [float(v) for v in row["values"]], list(row["timestamps"])))
        return sorted(series, key=lambda s: (s.name, sorted(s.labels.items())))
