"""The gateway pipeline on a fake link and a fake clock, against a real database: what component
tests drive with `gateway.pump()` instead of threads and a broker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from core.clock import FakeClock
from core.config import Settings
from gateway.handlers import HANDLERS, Handler
from gateway.pipeline import Gateway
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
