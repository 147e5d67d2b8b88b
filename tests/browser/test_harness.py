"""The harness itself against the real stack: the browser reaches the API subprocess, axe runs under the
app's CSP, the API survives a SIGKILL and a restart on its port, and a device's reading becomes an alarm."""

from __future__ import annotations

import httpx2
import pytest
from playwright.sync_api import Page

from tests.browser.stack import Stack, axe_violations, console_errors, shoot
from tests.support.mqtt import wait_until

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


def test_the_api_comes_back_on_its_port_after_a_sigkill(stack: Stack, desk: Page) -> None:
    desk.goto("/docs")
    hello = desk.evaluate(
        """(token) => new Promise((resolve, reject) => {
            const ws = new WebSocket(location.origin.replace('http', 'ws') + '/api/v1/live');
            ws.onopen = () => ws.send(JSON.stringify({token}));
            ws.onmessage = (e) => resolve(JSON.parse(e.data).type);
            ws.onerror = () => reject(new Error('no live feed'));
            ws.onclose = (e) => { window.closedWith = e.code; };
        })""",
        stack.token("zhao"),
    )
    assert hello == "hello"
    stack.kill_api()
    assert not stack.api_running
    desk.wait_for_function("window.closedWith !== undefined")  # the browser's WebSocket died with the API
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"{stack.base}/healthz", timeout=2)
    stack.start_api()
    assert httpx2.get(f"{stack.base}/healthz", timeout=5).json() == {"status": "ok"}


def test_a_gas_reading_becomes_an_active_critical_alarm(stack: Stack) -> None:
    with stack.client("zhao") as api:
        stack.reading(GAS, "gas", {"lel_pct": 30})

        def active() -> list[dict[str, object]]:
            r = api.get("/api/v1/alarms", params={"state": "active"})
            assert r.status_code == 200, r.text
            return [a for a in r.json()["items"] if a["device"] == GAS]

        [alarm] = wait_until(active, what=f"an active alarm of {GAS}")
    assert (alarm["severity"], alarm["alarm_type"]) == ("critical", "gas"), alarm
