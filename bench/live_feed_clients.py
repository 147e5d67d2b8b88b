"""The live-feed clients of bench/live_clients.py: WebSocket screens in child processes, each timing the
events it receives by what the tap's uid carries (no word to the others, no JSON parsing)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

UID_MARK = '"tag_uid":"'


# ----------------------------------------------------------------------------- what a tap's uid carries


def tap_uid(run: str, measured: bool, n: int) -> str:
    """20 hex digits: the run (1 hex), measured or warm-up (1/0), the tap's number (6), its publish time
    (CLOCK_MONOTONIC in µs, 12: one clock for every process on the machine). No tag has it, so the tap is
    refused `unknown_tag`, which still stores a sign-in and publishes its event."""
    return f"{run}{int(measured)}{n:06X}{time.monotonic_ns() // 1000:012X}"


def uid_latency_ms(uid: str, now_us: int) -> float:
    return (now_us - int(uid[8:20], 16)) / 1000


# ----------------------------------------------------------------------------- the live-feed clients (child processes)


@dataclass
class Tally:
    """One WebSocket client's receipts of one run: which measured taps' events it got, and how late."""

    seen: bytearray
    lat_ms: array[float] = field(default_factory=lambda: array("d"))
    warm: int = 0  # events of warm-up taps
    other: int = 0  # anything else: another event type, an event of the previous run
    dups: int = 0
    error: str | None = None
    closing: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "received": len(self.lat_ms),
            "lat": self.lat_ms.tobytes(),
            "seen": bytes(self.seen),
            "warm": self.warm,
            "other": self.other,
            "dups": self.dups,
            "error": self.error,
        }


async def open_feed(url: str, token: str) -> ClientConnection:
    """As the web UI does: connect, the token as the first message (asking for events in arrays, as
    the UI does), wait for the hello. No pings of its own (a browser sends none), so a busy server is
    not hung up on for being slow to answer one."""
    ws = await ws_connect(url, open_timeout=15, ping_interval=None, close_timeout=2)
    await ws.send(json.dumps({"token": token, "batch": True}))
    hello = json.loads(await asyncio.wait_for(ws.recv(), 15))
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        await ws.close()
        raise RuntimeError(f"no hello: {str(hello)[:200]}")
    return ws


def tally_uid(t: Tally, uid: str, run: str, now_us: int) -> None:
    if len(uid) != 20 or uid[0] != run:
        t.other += 1
    elif uid[1] != "1":
        t.warm += 1
    elif (n := int(uid[2:8], 16)) >= len(t.seen) or t.seen[n]:
        t.dups += 1
    else:
        t.seen[n] = 1
        t.lat_ms.append(uid_latency_ms(uid, now_us))


async def read_feed(ws: ClientConnection, t: Tally, run: str) -> None:
    """Time each event as it comes out of the socket; the uid is found by text search, not json.loads,
    so the client's own parsing costs as little as it can (it shares the machine with the server)."""
    try:
        async for text in ws:
            now_us = time.monotonic_ns() // 1000
            if not isinstance(text, str):
                t.other += 1
                continue
            at = text.find(UID_MARK)
            if at < 0:
                t.other += 1
            while at >= 0:  # a frame is an array of events: each of them
                uid = text[at + len(UID_MARK) : at + len(UID_MARK) + 20]
                tally_uid(t, uid, run, now_us)
                at = text.find(UID_MARK, at + len(UID_MARK))
    except ConnectionClosed as exc:
        if not t.closing:
            t.error = f"closed by the server: {exc}"


async def serve_clients(url: str, token: str, n: int, run: str, total: int, shared: dict[str, Any]) -> list[Tally]:
    tallies = [Tally(bytearray(total)) for _ in range(n)]
    opened = await asyncio.gather(*(open_feed(url, token) for _ in range(n)), return_exceptions=True)
    sockets: list[ClientConnection] = []
    readers: list[asyncio.Task[None]] = []
    for t, ws in zip(tallies, opened, strict=True):
        if isinstance(ws, BaseException):
            t.error = f"could not open the live feed: {type(ws).__name__}: {ws}"
        else:
            sockets.append(ws)
            readers.append(asyncio.create_task(read_feed(ws, t, run)))
    slot, progress = shared["slot"], shared["progress"]
    shared["opened"][slot] = len(sockets)
    shared["ready"].set()
    deadline = time.monotonic() + shared["max_s"]
    while not shared["halt"].is_set() and time.monotonic() < deadline:
        progress[slot] = sum(len(t.lat_ms) for t in tallies)
        await asyncio.sleep(0.1)
    progress[slot] = sum(len(t.lat_ms) for t in tallies)
    for t in tallies:
        t.closing = True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True), 10)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return tallies


def client_process(url: str, token: str, n: int, run: str, total: int, shared: dict[str, Any], results: Any) -> None:
    """Child process: `n` live-feed clients on one asyncio loop until `halt` (or `max_s`); puts their
    tallies on `results`. Not the server's process, and not the one that times the publisher."""
    out: dict[str, Any] = {"slot": shared["slot"]}
    try:
        out["clients"] = [t.summary() for t in asyncio.run(serve_clients(url, token, n, run, total, shared))]
    except Exception as exc:
        out["error"] = f"live clients failed: {type(exc).__name__}: {exc}"
    finally:
        shared["ready"].set()
        results.put(out)


# ----------------------------------------------------------------------------- the taps (a child process)
