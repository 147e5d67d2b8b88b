"""A real gateway on a real Mosquitto, in simulated time, with the control room's two ways of watching:
the out/ topics on the broker and the API's live feed WebSocket.

What the end-to-end incident tests (tests/integration/test_incidents_e2e.py) drive: each message is
published by the device whose topic it is (its own broker account), the gateway and the deadline
sweeper share one `FakeClock`, so a clear delay or a door left open for 10 minutes passes when the
test says so, never by sleeping. Waiting here is only for messages crossing the broker.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from app.wiring import deadline_handlers, live_source
from core.broker_access import GATEWAY_ACCOUNT, LIVE_ACCOUNT
from core.clock import FakeClock
from core.config import Settings
from core.contract import event_topic, status_topic, telemetry_topic
from core.outbound import DeviceStatusEvent, Outbound
from gateway.pipeline import Gateway
from gateway.sweeper import Sweeper
from server.api.app import create_app
from server.auth import Role
from storage.db import session_factory
from storage.models import Alarm, Device, SensorLatest, Ticket, TicketEvent, TicketStep
from tests.support.accounts import SITE, publisher_of
from tests.support.api import make_client, serve_in_thread, token_for
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import SitePeers, end_gateway_sessions, wait_until

Event = dict[str, Any]
Match = Callable[[str, Event], bool]
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
PROBE_DEVICE = "rdr-h06"  # a reader no incident test uses: its out/ status proves the live feed listens


class Seen:
    """Everything one watcher received, in order; `wait_for` finds the first not yet claimed that matches."""

    def __init__(self, what: str, receive: Callable[[float], tuple[str, Event] | None]) -> None:
        self.what = what
        self.items: list[tuple[str, Event]] = []
        self._claimed: set[int] = set()
        self._receive = receive

    def wait_for(self, match: Match, what: str, timeout: float = 15.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            for i, (topic, body) in enumerate(self.items):
                if i not in self._claimed and match(topic, body):
                    self._claimed.add(i)
                    return body
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.what}: no {what} within {timeout}s; got {[b for _, b in self.items]}")
            got = self._receive(min(remaining, 0.5))
            if got is not None:
                self.items.append(got)

    def bodies(self, match: Match) -> list[Event]:
        return [body for topic, body in self.items if match(topic, body)]


def alarm_change(device: str, alarm_type: str, change: str) -> Match:
    suffix = f"/out/alarm/{device}/{alarm_type}"
    return lambda topic, body: topic.endswith(suffix) and body.get("type") == "alarm" and body["change"] == change


def ticket_change(ticket_id: int, change: str) -> Match:
    suffix = f"/out/ticket/{ticket_id}"
    return lambda topic, body: topic.endswith(suffix) and body.get("type") == "ticket" and body["change"] == change


def live_alarm_change(device: str, alarm_type: str, change: str) -> Match:
    """The same alarm change as the browser gets it: no topic, the site added."""
    return lambda _t, body: (
        body.get("type") == "alarm"
        and (body["device"], body["alarm_type"], body["change"])
        == (
            device,
            alarm_type,
            change,
        )
    )


def live_ticket_change(ticket_id: int, change: str) -> Match:
    return lambda _t, body: body.get("type") == "ticket" and (body["id"], body["change"]) == (ticket_id, change)


@dataclass
class IncidentRig:
    """The gateway, its clock and sweeper, the devices' MQTT clients and both watchers."""

    broker: MosquittoBroker
    engine: Engine
    gateway: Gateway
    clock: FakeClock
    sweeper: Sweeper
    peers: SitePeers
    out: Seen  # what the observer (a gateway's rights) reads under out/ on the broker
    live: Seen  # what a control-room user reads on the live feed WebSocket

    # ------------------------------------------------------------------ what the devices send

    def reading(self, device: str, kind: str, msg_id: str, **values: Any) -> None:
        body = {"id": msg_id, "ts": self._ts(), "kind": kind, "values": values}
        self.peers.publish(telemetry_topic(SITE, device), body)

    def event(self, device: str, kind: str, msg_id: str, state: str, code: str | None = None, **detail: Any) -> None:
        body: Event = {"id": msg_id, "ts": self._ts(), "kind": kind, "state": state, "detail": detail}
        if code is not None:
            body["code"] = code
        self.peers.publish(event_topic(SITE, device), body)

    def status(self, device: str, *, online: bool) -> None:
        self.peers.publish(status_topic(SITE, device), {"ts": self._ts(), "online": online})

    def _ts(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    # ------------------------------------------------------------------ time

    def advance_and_sweep(self, seconds: float) -> int:
        """Simulated time passes; the deadline engine acts on what fell due (publishing through the gateway)."""
        self.clock.advance(seconds)
        return self.sweeper.sweep_once()

    # ------------------------------------------------------------------ what was stored

    def alarms(self, device: str) -> list[Alarm]:
        with session_factory(self.engine)() as s:
            return list(s.scalars(select(Alarm).join(Device).where(Device.code == device).order_by(Alarm.id)))

    def tickets(self, device: str) -> list[Ticket]:
        with session_factory(self.engine)() as s:
            return list(s.scalars(select(Ticket).join(Device).where(Device.code == device).order_by(Ticket.id)))

    def steps(self, ticket_id: int) -> list[TicketStep]:
        with session_factory(self.engine)() as s:
            stmt = select(TicketStep).where(TicketStep.ticket_id == ticket_id).order_by(TicketStep.position)
            return list(s.scalars(stmt))

    def ticket_events(self, ticket_id: int) -> list[str]:
        with session_factory(self.engine)() as s:
            stmt = select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
            return list(s.scalars(stmt))

    def latest_at(self, device: str) -> datetime | None:
        """When the sensor's newest stored reading was taken: proof that the gateway committed a reading."""
        with session_factory(self.engine)() as s:
            stmt = select(SensorLatest.observed_at).join(Device).where(Device.code == device)
            return s.scalars(stmt).one_or_none()

    def wait_alarm_count(self, device: str, count: int) -> Alarm:
        def reached() -> Alarm | None:
            alarms = self.alarms(device)
            return alarms[0] if len(alarms) == 1 and alarms[0].count >= count else None

        alarm: Alarm = wait_until(reached, what=f"{device}'s alarm counted {count} times")
        return alarm


def _ws_receiver(ws: Connection) -> Callable[[float], tuple[str, Event] | None]:
    def receive(timeout: float) -> tuple[str, Event] | None:
        try:
            data = ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        return "", json.loads(data)

    return receive


def _mqtt_receiver(peers: SitePeers) -> Callable[[float], tuple[str, Event] | None]:
    def receive(timeout: float) -> tuple[str, Event] | None:
        try:
            [item] = peers.take(1, timeout=timeout)
        except AssertionError:
            return None
        return item

    return receive


def _live_feed_listening(peers: SitePeers, live: Seen) -> None:
    """The feed subscribes to the broker in the background: until an out/ event published now comes
    through, a test's first events could be missed. A status of a device no test touches, not retained."""
    probe = DeviceStatusEvent(device=PROBE_DEVICE, kind="handheld_reader", online=True, status_at=datetime.now(UTC))
    outbound = Outbound(SITE, probe)
    deadline = time.monotonic() + 20
    while True:
        peers.publish(outbound.topic, outbound.to_bytes())
        try:
            live.wait_for(lambda _t, b: b.get("device") == PROBE_DEVICE, "probe", timeout=0.5)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


@contextmanager
def incident_rig(
    broker: MosquittoBroker, engine: Engine, settings: Settings, start: datetime, also: tuple[str, ...] = ()
) -> Iterator[IncidentRig]:
    """A gateway (`settings`: its account on `broker`) on a FakeClock at `start`, the deadline sweeper on the same
    clock, the API with its live feed under uvicorn, and a control-room user watching site liyuan. The observer
    reads the site's out/ topics, and `also` (e.g. readers' answers)."""
    clock = FakeClock(start)
    end_gateway_sessions(broker, GATEWAY_ACCOUNT)
    gateway = Gateway(settings, engine, clock=clock)
    sweeper = Sweeper(
        session_factory(engine), clock, deadline_handlers(settings, gateway.incidents), gateway.publish_events
    )
    feed_settings = Settings(_env_file=None, mqtt_url=broker.url_for(LIVE_ACCOUNT))  # type: ignore[call-arg]
    app = create_app(feed_settings, engine, live_feed=live_source(feed_settings))
    token = token_for(engine, make_client(engine), Role.CONTROL_ROOM)["Authorization"].split()[1]
    peers = SitePeers(broker, subscribe=(f"patrol/v1/{SITE}/out/#", *also))
    gateway.start()
    try:
        wait_until(gateway.link.subscribed.is_set, what="gateway subscription")
        with serve_in_thread(app) as base, connect(ws_url(base), open_timeout=10) as ws:
            ws.send(json.dumps({"token": token}))
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            live = Seen("live feed", _ws_receiver(ws))
            _live_feed_listening(peers, live)
            yield IncidentRig(
                broker, engine, gateway, clock, sweeper, peers, Seen("broker", _mqtt_receiver(peers)), live
            )
    finally:
        peers.close()
        gateway.stop()
        end_gateway_sessions(broker, GATEWAY_ACCOUNT)


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + f"/api/v1/live?site={SITE}"


@contextmanager
def device_with_last_will(broker: MosquittoBroker, device: str) -> Iterator[Callable[[str], None]]:
    """A device connected as in the field (its own account, one connection, `mosquitto_pub -l`) with its Last
    Will `{"online": false}` retained on its status topic; yields `say(json_line)`. Leaving the block kills it
    without DISCONNECT, so the broker publishes the Will (then the retained Will is deleted again)."""
    topic = status_topic(SITE, device)
    username = publisher_of(topic, broker.rules)
    assert username is not None, f"no account may publish {topic}"
    will = ["--will-topic", topic, "--will-payload", '{"online": false}', "--will-qos", "1", "--will-retain"]
    proc = subprocess.Popen(
        [MOSQUITTO_PUB, *broker.cli_login(username), "-q", "1", "-t", topic, "-l", *will],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    stdin = proc.stdin

    def say(line: str) -> None:
        stdin.write(line.encode() + b"\n")
        stdin.flush()

    try:
        yield say
    finally:
        proc.kill()
        proc.wait(10)
        stdin.close()


def clear_retained(peers: SitePeers, *topics: str) -> None:
    """An empty retained message deletes the retained one, so later tests are not handed it."""
    for topic in topics:
        peers.publish(topic, b"", retain=True)
