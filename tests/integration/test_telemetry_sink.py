"""The InfluxDB telemetry writer against a real server over HTTP.

VictoriaMetrics stands in for InfluxDB v2 (none is installable here): it takes influxdb-client's
writes on the same `/api/v2/write` endpoint, but stores each field as a series `measurement_field`,
bools as 1/0 and **strings as 0** (InfluxDB keeps the text), ignores the bucket and org, and needs
`-dedup.minScrapeInterval` to do what InfluxDB does natively: a point written twice is one point.
So these tests prove the numeric telemetry, tags, times, idempotence and failure behaviour; what a
real InfluxDB does with string fields is not tested here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr

from core.config import Settings
from gateway.telemetry_sink import InfluxSink, NullSink, ReadingPoint, TelemetryUnavailable, sink_from_settings
from tests.support.victoria import Series, VictoriaMetrics

pytestmark = pytest.mark.integration

# A fixed time in the past (the server keeps 100 years, tests/support/victoria.py), with µs that ms precision cuts.
AT = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
AT_MS = 1748779200123
ALL_KINDS = '{__name__=~"(gas|water_leak|door|elevator)_.*"}'


def reading(kind: str, device: str, values: dict[str, object], at: datetime = AT, **place: str | None) -> ReadingPoint:
    where = {"building": "A座", "floor": "B1", "location": "商铺101"} | place
    return ReadingPoint(kind, "liyuan", device, where["building"], where["floor"], where["location"], at, values, "m-1")


BATCH = [
    reading("gas", "gas-b1-shop101", {"lel_pct": 12, "co_ppm": 3.5}),
    reading("gas", "gas-b1-shop102", {"lel_pct": 0.5, "co_ppm": None}, building=None, location=None),
    reading("gas", "gas-b1-shop101", {"lel_pct": 14.25}, at=AT + timedelta(seconds=10)),
    reading("water_leak", "leak-b2-pump", {"wet": True, "level_mm": 4}, floor="B2", location="水泵房"),
    reading("door", "door-roof", {"open": False}, floor="RF", location="天台门"),
    reading("elevator", "lift-a1", {"state": "fault", "floor": 3, "occupied": True}, floor=None, location="1号梯"),
]


def by_key(series: list[Series]) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """(series name, device) → samples; the full labels are checked separately."""
    return {(s.name, s.labels["device"]): s.samples for s in series}


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    vm = VictoriaMetrics(tmp_path / "vm")
    vm.start()
    yield vm
    vm.stop()


@pytest.fixture
def sink(victoria: VictoriaMetrics) -> Iterator[InfluxSink]:
    s = InfluxSink(victoria.url, "test-token", "patrol", "telemetry", timeout_s=1)
    yield s
    s.close()


def test_readings_of_several_kinds_and_devices_read_back_with_their_tags_and_values(
    victoria: VictoriaMetrics, sink: InfluxSink
) -> None:
    sink.write(BATCH)
    series = victoria.export(ALL_KINDS)

    assert by_key(series) == {
        ("gas_lel_pct", "gas-b1-shop101"): [(AT_MS, 12.0), (AT_MS + 10_000, 14.25)],
        ("gas_co_ppm", "gas-b1-shop101"): [(AT_MS, 3.5)],
        ("gas_lel_pct", "gas-b1-shop102"): [(AT_MS, 0.5)],  # co_ppm None: no field, no series
        ("water_leak_wet", "leak-b2-pump"): [(AT_MS, 1.0)],  # a bool true is 1
        ("water_leak_level_mm", "leak-b2-pump"): [(AT_MS, 4.0)],
        ("door_open", "door-roof"): [(AT_MS, 0.0)],  # a bool false is 0
        ("elevator_floor", "lift-a1"): [(AT_MS, 3.0)],
        ("elevator_occupied", "lift-a1"): [(AT_MS, 1.0)],
        ("elevator_state", "lift-a1"): [(AT_MS, 0.0)],  # a string: InfluxDB keeps "fault", VictoriaMetrics 0
    }
    labels = {(s.name, s.labels["device"]): s.labels for s in series}
    assert labels["gas_co_ppm", "gas-b1-shop101"] == {
        "site": "liyuan",
        "building": "A座",
        "floor": "B1",
        "location": "商铺101",
        "device": "gas-b1-shop101",
    }
    # absent places are left out, not written as empty tags
    assert labels["gas_lel_pct", "gas-b1-shop102"] == {"site": "liyuan", "floor": "B1", "device": "gas-b1-shop102"}
    assert labels["elevator_floor", "lift-a1"] == {
        "site": "liyuan",
        "building": "A座",
        "location": "1号梯",
        "device": "lift-a1",
    }


def test_writing_the_same_batch_again_adds_no_samples(victoria: VictoriaMetrics, sink: InfluxSink) -> None:
    """A redelivered batch is written again (the broker's retry); same measurement, tags and time: no duplicate."""
    sink.write(BATCH)
    first = victoria.export(ALL_KINDS)
    sink.write(BATCH)
    sink.write(list(reversed(BATCH)))
    assert victoria.export(ALL_KINDS) == first
    assert sum(len(s.values) for s in first) == 10


def test_server_down_raises_unavailable_and_the_same_batch_is_written_when_it_is_back(
    victoria: VictoriaMetrics, sink: InfluxSink
) -> None:
    victoria.stop()
    started = time.monotonic()
    with pytest.raises(TelemetryUnavailable) as err:
        sink.write(BATCH)
    assert time.monotonic() - started < sink.timeout_s + 0.5
    message = str(err.value)
    for advice in (victoria.url, "PATROL_INFLUX_URL", "PATROL_INFLUX_TOKEN", "up"):
        assert advice in message

    victoria.start()
    assert victoria.export(ALL_KINDS) == []  # nothing of the failed batch was half-written
    sink.write(BATCH)  # the redelivery
    assert sum(len(s.values) for s in victoria.export(ALL_KINDS)) == 10


def test_hung_server_fails_the_batch_within_the_timeout_and_a_late_write_does_no_harm(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    """A server that accepts the connection but never answers: the batch fails after `timeout_s`, not later.
    The server may still store the request it answers late; the redelivered batch then overwrites it."""
    sink = InfluxSink(victoria.url, None, "patrol", "telemetry", timeout_s=0.5)
    try:
        victoria.pause()
        started = time.monotonic()
        with pytest.raises(TelemetryUnavailable, match=r"timeout 0\.5 s"):
            sink.write(BATCH)
        elapsed = time.monotonic() - started
        victoria.resume()
        assert 0.4 < elapsed < 1.5
        sink.write(BATCH)
        series = victoria.export(ALL_KINDS)
        assert all(len(s.values) == len(set(s.timestamps)) for s in series)
        assert sum(len(s.values) for s in series) == 10
    finally:
        sink.close()


def test_a_refused_token_is_unavailable_and_names_the_token(tmp_path: Path) -> None:
    """Behind HTTP auth the server answers 401: retried later (not dropped), and the message says what to check."""
    vm = VictoriaMetrics(tmp_path / "vm", extra_args=("-httpAuth.username=patrol", "-httpAuth.password=right"))
    vm.start()
    sink = InfluxSink(vm.url, "wrong", "patrol", "telemetry", timeout_s=1)
    try:
        with pytest.raises(TelemetryUnavailable, match="HTTP 401") as err:
            sink.write(BATCH)
        assert "PATROL_INFLUX_TOKEN" in str(err.value)
        assert "wrong" not in str(err.value)  # the token is never echoed
    finally:
        sink.close()
        vm.stop()


class _Answering(BaseHTTPRequestHandler):
    """Answers every write with the status the test sets, as InfluxDB does (JSON body)."""

    status = 204

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"code":"invalid","message":"partial write: field type conflict"}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.mark.parametrize(("status", "retried"), [(400, False), (422, False), (429, True), (503, True)])
def test_refused_points_are_logged_not_retried_and_a_busy_server_is_retried(
    status: int, retried: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """400/422: InfluxDB read the batch and refused points in it (a type conflict): sending it again cannot
    help, so the batch goes on (logged; the readings stay in the message log). 429/5xx: try again later."""
    handler = type("Handler", (_Answering,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    sink = InfluxSink(f"http://127.0.0.1:{server.server_address[1]}", "t", "patrol", "telemetry", timeout_s=1)
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.telemetry_sink"):
            if retried:
                with pytest.raises(TelemetryUnavailable, match=f"HTTP {status}"):
                    sink.write(BATCH)
            else:
                sink.write(BATCH)
                assert "field type conflict" in caplog.text
                assert "m-1" in caplog.text
    finally:
        sink.close()
        server.shutdown()
        server.server_close()


def test_a_batch_without_storable_values_sends_nothing() -> None:
    """Nothing to write (no values, only None, NaN or nested objects): no request, so no server is needed."""
    sink = InfluxSink("http://127.0.0.1:9", None, "patrol", "telemetry", timeout_s=0.2)  # port 9: nobody listens
    try:
        sink.write([])
        sink.write([reading("gas", "gas-1", {"lel_pct": None, "co_ppm": float("nan"), "raw": {"a": 1}})])
        with pytest.raises(TelemetryUnavailable):
            sink.write([reading("gas", "gas-1", {"lel_pct": 1})])  # the same sink does send a real value
    finally:
        sink.close()


def test_a_reading_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        reading("gas", "gas-1", {"lel_pct": 1}, at=datetime(2025, 6, 1, 12, 0))


def test_settings_choose_the_sink() -> None:
    """No PATROL_INFLUX_URL: telemetry stays in SQL (NullSink); with one, InfluxSink with the settings' names."""
    for unset in (None, ""):
        assert isinstance(sink_from_settings(Settings(_env_file=None, influx_url=unset)), NullSink)  # type: ignore[call-arg]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        influx_url="http://influx.example:8086",
        influx_token=SecretStr("t0ken"),
        influx_org="acme",
        influx_bucket="readings",
        influx_timeout_s=2.5,
    )
    sink = sink_from_settings(settings)
    try:
        assert isinstance(sink, InfluxSink)
        assert (sink.url, sink.org, sink.bucket) == ("http://influx.example:8086", "acme", "readings")
        assert sink.timeout_s == 2.5
    finally:
        sink.close()
    with pytest.raises(ValueError):
        Settings(_env_file=None, influx_url="influx.example:8086")  # type: ignore[call-arg]
