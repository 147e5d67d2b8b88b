"""The browser tests' harness: the API as a subprocess beside the in-process gateway, and the helpers a
browser test uses on a page (console errors, axe, screenshots).

The API runs as `python -m app.cli api`, as in production, so a test can SIGKILL it (the browser's
WebSocket dies with it) and start it again on the same port. Its live feed logs in to the test
Mosquitto with the live account and subscribes to the out/ topics the in-process gateway publishes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import weakref
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx2
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page
from sqlalchemy import Engine

from core.broker_access import LIVE_ACCOUNT
from gateway.pipeline import Gateway
from server.auth import Role
from tests.support.accounts import SITE
from tests.support.api import PASSWORD, add_user
from tests.support.mosquitto import MosquittoBroker, free_port
from tests.support.mqtt import SitePeers
from tests.support.processes import stop

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "PASSWORD",
    "USERS",
    "Stack",
    "axe_violations",
    "console_errors",
    "open_page",
    "shoot",
]

REPO = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
#: ../shared/FIELD-NOTES.md: Debian's chromium under Playwright, no `playwright install`; no QUIC either
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: Who can log in (all with tests.support.api.PASSWORD); a guard's login is their staff code (demo site: G001 张伟).
USERS: dict[str, Role] = {"zhao": Role.CONTROL_ROOM, "qian": Role.SUPERVISOR, "G001": Role.GUARD}
#: The line the API's live feed logs once the broker granted its out/ subscription (gateway/mqtt_link.py).
LIVE_SUBSCRIBED = "subscribed to patrol/v1/+/out/#"
PAGE_TIMEOUT_MS = 10_000

DESK: dict[str, Any] = {
    "viewport": {"width": 1440, "height": 900},
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}
KINDS: dict[str, dict[str, Any]] = {"desk": DESK, "phone": PHONE}

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The API is SIGKILLed if pytest dies (a pytest-timeout exit, Ctrl-C twice): never left holding a port."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Stack:
    """The gateway (in process, the `gateway` fixture) and the API (a subprocess) on one SQLite database and
    the test Mosquitto. See tests/browser/conftest.py `stack` for what a test gets."""

    def __init__(
        self,
        *,
        mosquitto: MosquittoBroker,
        engine: Engine,
        db_url: str,
        gateway: Gateway,
        peers: SitePeers,
        log_path: Path,
    ) -> None:
        self.mosquitto = mosquitto
        self.engine = engine
        self.db_url = db_url
        self.gateway = gateway
        self.peers = peers
        self.log_path = log_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
        self.env.update(
            PATROL_DATABASE_URL=db_url,
            PATROL_API_PORT=str(self.port),
            PATROL_EMBEDDED_BROKER_PORT=str(free_port()),  # unused (PATROL_MQTT_URL is set), never 1884
            # the live feed's own account (read out/ only); Mosquitto makes the username its client id
            PATROL_MQTT_URL=mosquitto.url_for(LIVE_ACCOUNT),
            PATROL_LOG_LEVEL="INFO",  # LIVE_SUBSCRIBED is an INFO line
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.start_seconds: list[float] = []  # how long each start_api took

    # ------------------------------------------------------------------ the API process

    @property
    def api_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start_api(self, timeout: float = 60.0) -> None:
        """Start `python -m app.cli api` on `self.port` (the same port every time) and wait until /healthz
        answers and its live feed is subscribed to out/; on failure the assertion carries the log's tail."""
        if self.api_running:
            raise AssertionError("the API is already running: kill_api() or stop_api() first")
        started = time.monotonic()
        self.starts += 1
        with self.log_path.open("ab") as out:
            out.write(f"\n===== start {self.starts} (port {self.port}) =====\n".encode())
            out.flush()
            offset = out.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "api"],
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        deadline = started + timeout
        while not (self._healthy() and LIVE_SUBSCRIBED in self._log_since(offset)):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise AssertionError(f"the API exited with {code} before it answered:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop_api()
                raise AssertionError(
                    f"the API did not answer /healthz with its live feed subscribed within {timeout:.0f} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)
        self.start_seconds.append(time.monotonic() - started)

    def kill_api(self) -> None:
        """SIGKILL the API: no shutdown at all, its sockets (the browser's WebSocket) just die."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop_api(self) -> None:
        """Stop the API as an operator would (SIGTERM, clean exit), SIGKILL if it takes longer than 10 s."""
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def _healthy(self) -> bool:
        try:
            return httpx2.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except httpx2.HTTPError:
            return False

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the API's log (every start of this test, one after the other)."""
        if not self.log_path.exists():
            return "(no API log)"
        text = self.log_path.read_text(errors="replace")
        return f"--- API log {self.log_path} (last {chars} chars) ---\n{text[-chars:]}"

    # ------------------------------------------------------------------ over HTTP, as a user

    def token(self, username: str) -> str:
        """A bearer token for one of USERS (or a user the test added with PASSWORD)."""
        r = httpx2.post(f"{self.base}/api/v1/auth/token", json={"username": username, "password": PASSWORD}, timeout=10)
        assert r.status_code == 200, f"login as {username}: {r.status_code} {r.text}"
        return str(r.json()["access_token"])

    def client(self, username: str) -> httpx2.Client:
        """An HTTP client on the API logged in as `username`: `with stack.client("zhao") as c: c.get(...)`."""
        headers = {"Authorization": f"Bearer {self.token(username)}"}
        return httpx2.Client(base_url=self.base, headers=headers, timeout=10)

    # ------------------------------------------------------------------ over MQTT, as the devices

    def publish(self, topic: str, payload: bytes | Mapping[str, Any], qos: int = 1, retain: bool = False) -> None:
        """Published by the device whose topic it is (its own account, a real MQTT client), as in the field;
        under out/ by a gateway's account. Waits until the broker has it."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.peers.publish(topic, data, qos=qos, retain=retain)

    def reading(self, device: str, kind: str, values: Mapping[str, Any], site: str = SITE) -> str:
        """A sensor's telemetry (CONTRACT.md) stamped now, with a fresh id; returns the id."""
        msg_id = f"{device}-{uuid.uuid4().hex[:12]}"
        body = {"id": msg_id, "ts": int(time.time() * 1000), "kind": kind, "values": dict(values)}
        self.publish(f"patrol/v1/{site}/sensor/{device}/telemetry", body)
        return msg_id


def add_users(engine: Engine) -> None:
    for username, role in USERS.items():
        add_user(engine, username, role)


# ---------------------------------------------------------------------- pages

#: What each page the harness opened logged as errors (console.error, network errors Chromium reports,
#: CSP violations, uncaught exceptions); read through `console_errors(page)`.
_console: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def _where(msg: ConsoleMessage) -> str:
    loc = msg.location or {}
    return f" ({loc.get('url', '')}:{loc.get('lineNumber', '')})" if loc.get("url") else ""


def watch_console(page: Page) -> None:
    errors = _console.setdefault(page, [])

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(f"console.error: {msg.text}{_where(msg)}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc.name}: {exc.message}"))


def console_errors(page: Page) -> list[str]:
    """The errors `page` logged so far, oldest first: the list itself (a test may `.clear()` it after a
    step that logs on purpose, e.g. the WebSocket failing to reconnect while the API is down)."""
    if page not in _console:
        raise AssertionError("this page was not opened by the harness (desk, phone, new_page)")
    if not page.is_closed():
        # Playwright's sync API runs event handlers only inside its own calls: one round trip hands over
        # what the browser reported until now (so `wait_until(lambda: console_errors(page))` works)
        with contextlib.suppress(Error):
            page.wait_for_timeout(0)
    return _console[page]


def open_page(browser: Browser, kind: Literal["desk", "phone"], base_url: str | None = None, **options: Any) -> Page:
    """A new context and page shaped as a control-room desk (1440×900) or a guard's phone (390×844, touch,
    2× pixels), zh-CN in Asia/Shanghai; `options` go to `browser.new_context` on top of those. Every page of
    the context has its console errors collected; close it with `page.context.close()`."""
    context: BrowserContext = browser.new_context(**{**KINDS[kind], "base_url": base_url, **options})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    context.on("page", watch_console)
    return context.new_page()


def axe_violations(
    page: Page,
    *,
    within: str | None = None,
    skip: Collection[str] = (),
    impacts: Collection[str] = ("serious", "critical"),
) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (or inside the `within` selector),
    compact enough to read in a failed assert: id, impact, help, how many nodes and the first 3 targets.

    axe is evaluated through CDP (`page.evaluate`), which the pages' CSP (`script-src 'self'`) does not
    apply to (an injected <script>, `add_script_tag`, is refused); `skip`: rule ids not to run."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    found: list[dict[str, Any]] = page.evaluate(
        """async ([within, skip]) => {
            const rules = Object.fromEntries(skip.map((id) => [id, {enabled: false}]));
            const result = await axe.run(within ? {include: [within]} : document, {resultTypes: ['violations'], rules});
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
                targets: v.nodes.slice(0, 3).map((n) => n.target.flat(Infinity).join(' >>> ')),
            }));
        }""",
        [within, list(skip)],
    )
    return [v for v in found if v["impact"] in impacts]


def screenshot_dir() -> Path:
    configured = os.environ.get("PATROL_SCREENSHOT_DIR")
    return Path(configured) if configured else REPO / "var" / "screenshots"


def shoot(page: Page, name: str) -> Path:
    """A full-page screenshot to $PATROL_SCREENSHOT_DIR (default var/screenshots/) as `{name}.png`."""
    directory = screenshot_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def failure_notes(page: Page, name: str) -> str:
    """For a failed test's report: the page's URL, console errors and a screenshot (if one can be taken)."""
    lines = [f"url: {page.url}", *console_errors(page)]
    try:
        lines.append(f"screenshot: {shoot(page, name)}")
    except Error as exc:
        lines.append(f"no screenshot: {exc.message}")
    return "\n".join(lines)
