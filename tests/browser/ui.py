"""Steps the browser tests take on the web UI, named as a duty officer or a guard would say them."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.api import PASSWORD


def log_in(page: Page, username: str, path: str = "/ui/") -> None:
    """Open the screen and log in from its login form."""
    page.goto(path)
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#login-form")).to_have_count(0)


def live(page: Page) -> None:
    """Wait until the control room's live feed is connected (it says so in the header) and the screen has
    read its lists."""
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "open")
    expect(page.locator("main#main")).to_have_attribute("data-loaded", "true")


def alarm_row(page: Page, device: str) -> str:
    """The selector of a device's alarm row on the live alarms view (rows carry their alarm's id)."""
    return f"[data-testid=alarm-row]:has-text('{device}')"


def view(page: Page, name: str) -> None:
    """Open one of the control room's views from its navigation bar."""
    page.get_by_test_id(f"nav-{name}").click()
    expect(page.get_by_test_id(f"nav-{name}")).to_have_attribute("aria-current", "page")
