"""The live hub's fan-out (server/live.py): serialised once, one delivery per broker message, and a slow
client that loses its oldest events is marked so the feed tells it to read its lists again (issue 9)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from core.outbound import DeviceStatusEvent
from server.live import LIVE_DROPPED, LiveHub


def _status(device: str) -> DeviceStatusEvent:
    return DeviceStatusEvent(device=device, kind="gas", online=True, status_at=datetime(2026, 11, 29, tzinfo=UTC))


def test_a_broker_messages_events_reach_each_client_as_one_delivery_of_json_texts() -> None:
    async def run() -> list[tuple[str, tuple[str, ...]]]:
        hub = LiveHub()
        hub.bind(asyncio.get_running_loop())
        async with hub.subscribe() as a, hub.subscribe() as b:
            hub.publish_threadsafe("liyuan", [_status("gas-1"), _status("gas-2")])
            got = [await asyncio.wait_for(q.get(), 1) for q in (a, b)]
        return [(d.site, d.texts) for d in got]

    first, second = asyncio.run(run())
    assert first == second, "every client gets the same texts, serialised once"
    site, texts = first
    assert site == "liyuan"
    assert [json.loads(t) for t in texts] == [
        {
            "type": "device_status",
            "device": d,
            "kind": "gas",
            "online": True,
            "status_at": "2026-11-29T00:00:00Z",
            "site": "liyuan",
        }
        for d in ("gas-1", "gas-2")
    ]


def test_a_slow_client_loses_its_oldest_events_and_is_marked_to_read_again() -> None:
    dropped = LIVE_DROPPED._value.get()

    async def run() -> tuple[list[str], bool]:
        hub = LiveHub()
        hub.bind(asyncio.get_running_loop())
        async with hub.subscribe(size=2) as slow:
            for n in range(3):
                hub.publish_threadsafe("liyuan", [_status(f"gas-{n}")])
            await asyncio.sleep(0)  # one turn of the loop runs the three fan-outs it was handed
            kept = [json.loads(slow.get_nowait().texts[0])["device"] for _ in range(slow.qsize())]
            return kept, slow.gap

    kept, gap = asyncio.run(run())
    assert kept == ["gas-1", "gas-2"] and gap
    assert LIVE_DROPPED._value.get() == dropped + 1
