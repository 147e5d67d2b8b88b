"""The gateway SIGKILLed mid-round (issue 8 Done-when): while six guards' taps stream through a real
Mosquitto, and again the moment their rounds' windows shut. No sign-in is lost or doubled, every tap
is answered, each round holds the result of its own taps judged in tap-time order, and each round's
missed checkpoints are told once: one webhook notice per round (the outbox commits with the mark),
never two events on out/.

The gateway runs in its own process (tests/support/patrol_gateway_process.py) on a ScaledClock, so
restarts continue one simulated time and the windows shut without the test sleeping through them.
Both databases."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlalchemy import select as sql_select

from core.broker_access import GATEWAY_ACCOUNT
from core.clock import ScaledClock
from core.contract import tap_topic
from core.rounds import Tap, close_due, judge_all
from storage.db import session_factory
from storage.models import Location, OutboxMessage, RoundPoint, SignIn, Staff
from storage.models import Round as RoundRow
from storage.rounds import as_value
from storage.sitefile.schema import SiteFile
from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import SitePeers, end_gateway_sessions, wait_quiet, wait_until
from tests.support.patrol import SITE, UID, at, load_plans, plan, tap_body, with_plans

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
REPO = Path(__file__).resolve().parents[2]
GUARDS = [f"G00{n}" for n in range(1, 7)]  # each holds reader rdr-h0n and is on duty 08:00-20:00
WALK = [("B1-F01-LOBBY", 60.0), ("B1-SHOP101", 120.0), ("B1-F01-TEL", 180.0)]  # s into the round; SHOP102 never
REPEATS = 60  # then the guard taps the three again every 5 s: duplicates and points already signed
KILL_AT_SIGNED = (100, 250)
SPEED = 60.0  # one real second is a simulated minute
WEBHOOKS = json.dumps([{"name": "control-room", "url": "http://127.0.0.1:9/hook"}])  # nothing listens: kept pending


class GatewayProcess:
    """The gateway in a subprocess on the test's simulated time; SIGKILL and start again."""

    def __init__(self, broker: MosquittoBroker, db_url: str, clock: ScaledClock, logs: Path) -> None:
        self.broker, self.db_url, self.clock, self.logs = broker, db_url, clock, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"gateway-{self.starts}.log").open("wb")
        argv = [self.db_url, self.broker.url_for(GATEWAY_ACCOUNT), GATEWAY_ACCOUNT, self.clock.now().isoformat()]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.patrol_gateway_process", *argv,
             str(SPEED), repr(time.time()), WEBHOOKS],
            cwd=REPO, stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
        log.close()
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        assert line.strip() == b"ready", f"the gateway did not start: {self.log()}"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def log(self) -> str:
        return (self.logs / f"gateway-{self.starts}.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def gateway(mosquitto: MosquittoBroker, engine: Engine, db_url: str, tmp_path: Path) -> Iterator[GatewayProcess]:
    end_gateway_sessions(mosquitto, GATEWAY_ACCOUNT)
    proc = GatewayProcess(mosquitto, db_url, ScaledClock(at(22), SPEED), tmp_path)  # after the taps' times
    try:
        yield proc
    finally:
        proc.stop()
        end_gateway_sessions(mosquitto, GATEWAY_ACCOUNT)


def _taps() -> list[tuple[str, str, str, datetime]]:
    """(reader, msg id, checkpoint, tap time) of every guard, in the order each guard taps."""
    taps = []
    for g, guard in enumerate(GUARDS, start=1):
        moves = [*WALK, *((WALK[i % 3][0], 180.0 + 5 * (i + 1)) for i in range(REPEATS))]
        taps += [(f"rdr-h0{g}", f"{guard}-{i:03d}", code, at(s / 60)) for i, (code, s) in enumerate(moves)]
    return taps


def _at_least(engine: Engine, count: int) -> bool:
    return _signed(engine) >= count


def _signed(engine: Engine) -> int:
    with session_factory(engine)() as s:
        return int(s.scalar(sql_select(func.count()).select_from(SignIn)) or 0)


def _wait_for_sim(clock: ScaledClock, when: datetime) -> None:
    """Wait (in real time) until the simulated clock reaches `when`."""
    wait_until(lambda: clock.now() >= when, timeout=60, what=f"simulated {when:%H:%M:%S}")


def test_sigkill_mid_round_loses_no_sign_in_and_tells_no_missed_point_twice(
    mosquitto: MosquittoBroker, engine: Engine, demo_site: SiteFile, gateway: GatewayProcess
) -> None:
    load_plans(engine, with_plans(demo_site, plans=[plan(guards=GUARDS)]), now=at(-30))
    taps = _taps()
    peers = SitePeers(mosquitto, subscribe=(f"patrol/v1/{SITE}/reader/+/ack", f"patrol/v1/{SITE}/out/round/#"))
    gateway.start()
    wait_until(lambda: _rounds(engine) == len(GUARDS), what="the rounds generated ahead by the gateway's sweeper")
    try:
        for reader, msg_id, code, when in taps:
            peers.publish(tap_topic(SITE, reader), tap_body(UID[code], msg_id, when))
        for threshold in KILL_AT_SIGNED:  # mid-stream: the taps wait in the gateway's session
            wait_until(partial(_at_least, engine, threshold), timeout=60, what=f"{threshold} sign-ins")
            gateway.kill()
            gateway.start()
        wait_until(lambda: _signed(engine) >= len(taps), timeout=90, what="every sign-in")
        assert wait_quiet(lambda: _signed(engine), what="sign-ins") == len(taps)
        answers = peers.answers([msg_id for _, msg_id, _, _ in taps], timeout=60)
        assert len(answers) == len(taps), "every tap answered, across the kills"
        _wait_for_sim(gateway.clock, at(35) + timedelta(seconds=3))  # the rounds' end + grace has just passed
        gateway.kill()  # perhaps mid-way through telling the control room
        gateway.start()
        wait_until(lambda: _told(engine) == len(GUARDS), timeout=60, what="every round's missed point told")
        gateway.kill()
        gateway.start()
        time.sleep(1.0)  # a real second (a simulated minute) for a repeated alert to show up: none may
        events = [body for _, body in peers.observer.take_all() if body.get("change") == "missed"]
    finally:
        peers.close()
    _assert_rounds_are_their_taps_in_order(engine)
    with session_factory(engine)() as s:
        notices = s.scalar(sql_select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state.is_not(None)))
    assert notices == len(GUARDS), "one webhook notice per round's missed checkpoint, never two"
    per_round: dict[int, int] = {}
    for body in events:
        per_round[body["id"]] = per_round.get(body["id"], 0) + 1
    assert all(n == 1 for n in per_round.values()), f"a missed alert was published twice on out/: {per_round}"


def _rounds(engine: Engine) -> int:
    with session_factory(engine)() as s:
        return int(s.scalar(sql_select(func.count()).select_from(RoundRow).where(RoundRow.starts_at == at(0))) or 0)


def _told(engine: Engine) -> int:
    with session_factory(engine)() as s:
        return int(
            s.scalar(
                sql_select(func.count(func.distinct(RoundPoint.round_id))).where(
                    RoundPoint.missed_alerted_at.is_not(None)
                )
            )
            or 0
        )


def _assert_rounds_are_their_taps_in_order(engine: Engine) -> None:
    """Each round holds what its stored taps give when judged in tap-time order, then closed."""
    with session_factory(engine)() as s:
        rounds = list(s.scalars(sql_select(RoundRow).where(RoundRow.starts_at == at(0))))
        assert len(rounds) == len(GUARDS)
        for r in rounds:
            guard = s.scalar(sql_select(Staff.code).where(Staff.id == r.guard_id)) or ""
            points = list(s.scalars(sql_select(RoundPoint).where(RoundPoint.round_id == r.id)))
            stored = s.execute(
                sql_select(Location.code, SignIn.tapped_at)
                .join(Location, Location.id == SignIn.location_id)
                .where(SignIn.guard_id == r.guard_id)
            ).all()
            expected, _ = judge_all(as_value(r, points, guard, fresh=True), [Tap(c, t) for c, t in stored])
            expected, _ = close_due(expected, at(40))
            got: dict[str, Any] = {p.checkpoint: p.result for p in points}
            assert got == {p.code: p.result for p in expected.points}, f"round of {guard}"
            assert got["B1-SHOP102"] == "missed" and r.state == "incomplete" and r.alert_open
