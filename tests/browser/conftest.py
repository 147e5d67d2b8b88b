"""Browser tests: Chromium (Playwright) on the web UI served by the API as a subprocess.

Fixtures (see tests/browser/stack.py for the helpers `console_errors`, `axe_violations`, `shoot`):
  stack     the gateway in process and the API subprocess on a fresh SQLite database holding the demo site
  browser   Debian's Chromium, one for the browser tests (package scope)
  desk      a page in a new 1440×900 zh-CN context, base URL = stack.base
  phone     a page in a new 390×844 touch, 2× zh-CN context, base URL = stack.base
  new_page  opens more: new_page("desk" | "phone", **context_options) -> Page
Every test here is marked `browser` and `integration`; when one fails, its report carries the API log's
tail and, per open page, the URL, console errors and a screenshot (var/screenshots/failed-…).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import Engine

from app.wiring import gateway_sweeper
from core.clock import SystemClock
from gateway.pipeline import Gateway
from tests.browser.stack import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGE_TIMEOUT_MS,
    Stack,
    add_users,
    failure_notes,
    open_page,
)
from tests.integration.conftest import gateway, gateway_settings, peer
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import SitePeers

__all__ = ["gateway", "peer"]  # the integration fixtures, used here as they are there

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def db_kind() -> str:
    """One backend only (the root fixture runs every database test on both): the browser drives the UI,
    whose queries the API tests already run on PostgreSQL."""
    return "sqlite"


@pytest.fixture
def stack(
    mosquitto: MosquittoBroker, engine: Engine, db_url: str, gateway: Gateway, peer: SitePeers, tmp_path: Path
) -> Iterator[Stack]:
    """The gateway (in process) and the API (`python -m app.cli api`, its log in tmp_path/api.log) on this
    test's database and the test Mosquitto, with users zhao (control_room), qian (supervisor), G001 (guard)."""
    add_users(engine)
    # the deadline engine beside the gateway, as `patrol gateway` runs it: it publishes what the API decided
    # (a step checked, a ticket taken) and fires escalations
    sweeper = gateway_sweeper(gateway_settings(mosquitto, db_url), engine, gateway, SystemClock())
    sweeper.start()
    s = Stack(
        mosquitto=mosquitto, engine=engine, db_url=db_url, gateway=gateway, peers=peer, log_path=tmp_path / "api.log"
    )
    try:
        s.start_api()
        yield s
    finally:
        s.stop_api()
        sweeper.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Package scope, not session: Playwright's sync API leaves its event loop set as the main thread's
    running loop until it stops, and the tests after this package may call asyncio.run()."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium and CJK fonts: "
            "`apt-get install chromium fonts-noto-cjk` (or run .ci/run, which installs them)",
            pytrace=False,
        )
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


NewPage = Callable[..., Page]


@pytest.fixture
def new_page(browser: Browser, stack: Stack) -> Iterator[NewPage]:
    """`new_page("desk" | "phone", **context_options)`: a page in a context of its own (closed after the test)."""
    pages: list[Page] = []

    def make(kind: Literal["desk", "phone"] = "desk", **options: Any) -> Page:
        page = open_page(browser, kind, stack.base, **options)
        pages.append(page)
        return page

    make.pages = pages  # type: ignore[attr-defined]  # for the failure report below
    yield make
    for page in pages:
        page.context.close()


@pytest.fixture
def desk(new_page: NewPage) -> Page:
    """The control room's screen: 1440×900, zh-CN, Asia/Shanghai; `desk.goto("/ui/")`."""
    return new_page("desk")


@pytest.fixture
def phone(new_page: NewPage) -> Page:
    """A guard's phone: 390×844, touch, 2× pixels, zh-CN, Asia/Shanghai; `phone.goto("/ui/guard.html")`."""
    return new_page("phone")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed and report.when == "call":
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        s = funcargs.get("stack")
        if isinstance(s, Stack):
            report.sections.append(("API log", s.log_tail()))
        make = funcargs.get("new_page")
        for n, page in enumerate(getattr(make, "pages", [])):
            if not page.is_closed():
                name = f"failed-{item.name}-{n}".replace("/", "_")
                report.sections.append((f"page {n}", failure_notes(page, name)))
    return report
