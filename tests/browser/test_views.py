"""Every view as a duty officer and a guard see it: screenshots for the README (zh-CN, desktop; the
guard's page at phone size) and axe-core's accessibility check with no serious or critical violation."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from playwright.sync_api import Page, expect

from storage.sitefile.schema import SiteFile
from tests.browser.stack import Stack, axe_violations, console_errors, shoot
from tests.browser.ui import live, log_in, view
from tests.support.mqtt import wait_until
from tests.support.patrol import load_plans

GAS = "gas-b1-shop101"
OFFLINE = "leak-b2-pump"


def _some_of_everything(stack: Stack, patrol_site: SiteFile) -> None:
    """A critical gas alarm with its ticket, a sensor gone offline with a low battery, today's rounds."""
    load_plans(stack.engine, patrol_site, datetime.now(UTC))
    stack.reading(GAS, "gas", {"lel_pct": 30})
    stack.publish(
        f"patrol/v1/liyuan/device/{OFFLINE}/status",
        {"ts": datetime.now(UTC).isoformat(), "online": False, "battery_pct": 8},
    )
    with stack.client("zhao") as api:
        wait_until(lambda: api.get("/api/v1/tickets").json()["items"], what="the gas leak's ticket")
        wait_until(lambda: api.get("/api/v1/rounds", params={"limit": 1}).json()["items"], what="today's rounds")


def _clean(page: Page, name: str) -> None:
    violations = axe_violations(page)
    assert violations == [], f"{name}: {violations}"


def test_every_control_room_view_has_a_screenshot_and_no_serious_accessibility_violation(
    stack: Stack, desk: Page, patrol_site: SiteFile
) -> None:
    desk.goto("/ui/")
    expect(desk.locator("#login-form")).to_be_visible()
    _clean(desk, "login")
    shoot(desk, "login")
    _some_of_everything(stack, patrol_site)
    log_in(desk, "zhao")
    live(desk)
    expect(desk.locator("[data-testid=building-tile][data-building=B1]")).to_contain_text("1")
    _clean(desk, "overview")
    shoot(desk, "overview")
    desk.locator("[data-testid=building-tile][data-building=B1]").click()
    expect(desk.locator("[data-testid=floor]")).to_have_count(1)
    _clean(desk, "overview-building")
    shoot(desk, "overview-building")
    for name, ready in (
        ("alarms", "[data-testid=alarm-row]"),
        ("tickets", "[data-testid=ticket-row]"),
        ("patrol", "[data-testid=round-row]"),
        ("devices", f"[data-testid=device-row][data-device={OFFLINE}][data-online=false]"),
    ):
        view(desk, name)
        expect(desk.locator(ready).first).to_be_visible()
        _clean(desk, name)
        shoot(desk, name)
    view(desk, "tickets")
    desk.locator("[data-testid=ticket-row] td a").first.click()
    expect(desk.get_by_test_id("ticket-detail")).to_be_visible()
    _clean(desk, "ticket")
    shoot(desk, "ticket")
    view(desk, "alarms")
    desk.get_by_test_id("ack").first.click()
    expect(desk.get_by_test_id("ack-dialog")).to_be_visible()
    _clean(desk, "ack-dialog")
    shoot(desk, "alarm-acknowledge")
    assert console_errors(desk) == []


def test_the_guards_phone_page_has_a_screenshot_and_no_serious_accessibility_violation(
    stack: Stack, phone: Page, patrol_site: SiteFile
) -> None:
    _some_of_everything(stack, patrol_site)
    log_in(phone, "G001", "/ui/guard.html")
    expect(phone.locator("[data-testid=guard-ticket]")).to_have_count(1)
    expect(phone.get_by_test_id("finding-form")).to_be_visible()
    card = phone.locator("[data-testid=guard-ticket]")
    if card.locator("[data-testid=step]").count() == 0:
        card.locator(".ticket-head").click()
    expect(card.locator("[data-testid=step]").first).to_be_visible()
    _clean(phone, "guard")
    shoot(phone, "guard")
    assert console_errors(phone) == []


def test_a_guard_reports_a_finding_with_a_photo_from_the_phone(stack: Stack, phone: Page) -> None:
    """P1 §2.6: a facility fault found on the round, reported from the phone with a photo from its camera
    (the file input asks for the camera), opens an engineering ticket; the photo is kept byte for byte."""
    photo = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(4096)
    log_in(phone, "G001", "/ui/guard.html")
    form = phone.get_by_test_id("finding-form")
    expect(form.locator("#f-photo")).to_have_attribute("capture", "environment")
    form.locator("#f-location").select_option("B1-F01-LOBBY")
    form.locator("#f-category").select_option("facility")
    form.locator("#f-note").fill("大堂吊灯不亮 lobby light out")
    form.locator("#f-photo").set_input_files({"name": "lobby.jpg", "mimeType": "image/jpeg", "buffer": photo})
    expect(form.locator("img.preview")).to_be_visible()
    form.locator("button[type=submit]").click()
    expect(phone.get_by_test_id("finding-sent")).to_be_visible()
    with stack.client("zhao") as api:
        [finding] = api.get("/api/v1/findings").json()["items"]
        assert (finding["category"], finding["reported_by"], len(finding["photos"])) == ("facility", "G001", 1)
        assert api.get(f"/api/v1/findings/{finding['id']}/photos/1").content == photo
        ticket = api.get(f"/api/v1/tickets/{finding['ticket_id']}").json()
    assert ticket["departments"] == ["engineering"]
    assert console_errors(phone) == []
