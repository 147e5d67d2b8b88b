"""The harness itself against the real stack: the browser reaches the API subprocess and axe runs under the
app's CSP. (A SIGKILL and a restart of the API on its port, and a device's reading becoming an alarm, are
exercised by tests/browser/test_control_room.py.)"""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser.stack import Stack, axe_violations, console_errors, shoot

GAS = "gas-b1-shop101"  # app/demo/liyuan.yaml: 1栋 101商铺（川菜馆）燃气探测器


def test_the_browser_sees_the_api_subprocess(stack: Stack, desk: Page) -> None:
    response = desk.goto("/docs")
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers["content-security-policy"]  # axe runs despite it
    desk.locator(".swagger-ui .information-container").wait_for()
    violations = axe_violations(desk)
    assert isinstance(violations, list) and all({"id", "impact", "help", "targets"} <= v.keys() for v in violations)
    desk.evaluate("console.error('seen by the harness')")
    assert any("seen by the harness" in e for e in console_errors(desk))
    assert shoot(desk, "harness-docs").stat().st_size > 0
