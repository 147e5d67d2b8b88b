"""The gateway pipeline on a fake link and a fake clock, against a real database: what component
tests drive with `gateway.pump()` instead of threads and a broker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from app.wiring import deadline_handlers
from core.clock import FakeClock
from core.config import Settings
from core.outbound import Outbound
from gateway.handlers import HANDLERS, Handler
from gateway.pipeline import Gateway
from gateway.sweeper import Sweeper
from storage.db import session_factory
from tests.support.fake_link import FakeLink


@dataclass
class Rig:
    gateway: Gateway
    link: FakeLink
    clock: FakeClock
    engine: Engine

    def count(self, stmt: object) -> int:
        with session_factory(self.engine)() as s:
            return int(s.scalar(stmt) or 0)  # type: ignore[call-overload]

    def answers(self, suffix: str = "/ack") -> list[dict[str, Any]]:
        """The answers published on topics ending with `suffix`, in order."""
        return [body for _, body in self.link.published(suffix)]


def sweeper_for(rig: Rig) -> Sweeper:
    """The product's deadline engine (every handler it registers) on the rig's clock, publishing on its
    fake link (the pipeline's answer thread, which publishes in production, does not run in pumped tests)."""

    def publish(events: Sequence[Outbound]) -> None:
        for event in events:
            for payload in event.payloads():
                rig.link.publish(event.topic, payload, retain=event.retain)

    settings = Settings(_env_file=None, database_url="sqlite://", mqtt_url="mqtt://127.0.0.1:1")  # type: ignore[call-arg]
    return Sweeper(session_factory(rig.engine), rig.clock, deadline_handlers(settings, rig.gateway.incidents), publish)


def make_rig(
    engine: Engine,
    db_url: str,
    *,
    now: datetime | None = None,
    handlers: Mapping[str, Handler] | None = None,
    **settings: Any,
) -> Rig:
    """A gateway with the given Settings overrides; `handlers` replace those of the same channel."""
    clock = FakeClock(now)
    link = FakeLink(clock)
    cfg = Settings(_env_file=None, database_url=db_url, mqtt_url="mqtt://127.0.0.1:1", **settings)  # type: ignore[call-arg]
    table = {**HANDLERS, **handlers} if handlers else None
    return Rig(Gateway(cfg, engine, clock=clock, link=link.attach, handlers=table), link, clock, engine)
