"""Where sensor readings go besides the message log: InfluxDB v2 when one is configured, else nowhere.

In SQL mode (no `PATROL_INFLUX_URL`) a reading already *is* a logged message, pruned after
`PATROL_TELEMETRY_RETENTION_DAYS` (storage/retention.py), so `NullSink` writes nothing. With an
InfluxDB, `InfluxSink` writes a batch's readings in one synchronous request from the batch worker
(never from the MQTT network thread), before the batch commits and is acked. When the write fails,
`TelemetryUnavailable` makes the worker roll back and leave the messages unacked: the broker
redelivers them and the same points are written again, which is harmless, because a point with the
same measurement, tags and time overwrites the earlier one in InfluxDB. So a reading acked to the
broker is in InfluxDB, and an InfluxDB that is down holds telemetry up instead of losing it.

influxdb-client's batching write API is not used: it keeps points in a memory buffer that is lost
unless `close()` runs, and reports failures on its own thread, after the broker has been acked.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from core.config import Settings

log = logging.getLogger(__name__)

FieldValue = float | bool | str

# InfluxDB answers these when it read the request but refused (some of) its points: bad line protocol or a
# field whose type differs from the one stored. Sending the batch again cannot change that, so the batch is not
# held up (its points InfluxDB accepted are written, the messages stay in SQL); anything else (no answer, a
# timeout, 401/403/404 for a token/org/bucket problem, 429, 5xx) is a reason to try again later.
REJECTED_STATUSES = frozenset({400, 422})


class TelemetryUnavailable(RuntimeError):
    """The whole batch of readings could not be written: roll back and do not ack, so it comes again."""


@dataclass(frozen=True)
class ReadingPoint:
    """One sensor reading as the sink writes it: what was measured (`kind`, `values`), where (the site's
    names for the place, used as tags) and when (`at`, the device's time, timezone-aware). `msg_id` names
    the message in logs; it is not written (a tag per message would grow the series without bound)."""

    kind: str
    site: str
    device: str
    building: str | None
    floor: str | None
    location: str | None
    at: datetime
    values: Mapping[str, Any]
    msg_id: str

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"ReadingPoint.at must be timezone-aware (message {self.msg_id})")

    def tags(self) -> dict[str, str]:
        """Where the reading was taken; absent places are left out, not written as empty tags."""
        pairs = (
            ("site", self.site),
            ("building", self.building),
            ("floor", self.floor),
            ("location", self.location),
            ("device", self.device),
        )
        return {k: v for k, v in pairs if v}

    def fields(self) -> dict[str, FieldValue]:
        """The values InfluxDB can store: numbers as floats (so a reading sent once as `3` and once as `3.5`
        never makes a field type conflict), bools as bools, strings as strings. None, NaN, infinities and
        nested objects are skipped: there is nothing to plot for them."""
        out: dict[str, FieldValue] = {}
        for name, value in self.values.items():
            if isinstance(value, bool | str):
                out[name] = value
            elif isinstance(value, int | float) and math.isfinite(value):
                out[name] = float(value)
        return out


def to_point(reading: ReadingPoint) -> Point | None:
    """One measurement per sensor kind (`gas`, `water_leak`, ...), tagged with the place, at ms precision;
    None when the reading has no value InfluxDB could store."""
    fields = reading.fields()
    if not fields:
        return None
    point = Point(reading.kind).time(reading.at, WritePrecision.MS)
    for key, tag in reading.tags().items():
        point.tag(key, tag)
    for name, value in fields.items():
        point.field(name, value)
    return point


class TelemetrySink(Protocol):
    """Receives each batch's readings before the batch commits. `write` raises `TelemetryUnavailable`
    when nothing of the batch could be written; writing the same readings again must be harmless."""

    def write(self, points: Sequence[ReadingPoint]) -> None: ...

    def close(self) -> None: ...


class NullSink:
    """SQL mode: the readings are the logged messages already; there is nothing more to write."""

    def write(self, points: Sequence[ReadingPoint]) -> None:
        return None

    def close(self) -> None:
        return None


class InfluxSink:
    """Writes readings to an InfluxDB v2 bucket through its `/api/v2/write` endpoint, a batch per request.

    The client does not retry on its own (influxdb-client's default): the broker's redelivery is the retry,
    and a write that waits longer than `timeout_s` fails the batch instead of stalling the worker."""

    def __init__(self, url: str, token: str | None, org: str, bucket: str, timeout_s: float = 5) -> None:
        self.url = url
        self.org = org
        self.bucket = bucket
        self.timeout_s = timeout_s
        self._client = InfluxDBClient(url=url, token=token or "", org=org, timeout=max(1, round(timeout_s * 1000)))
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, points: Sequence[ReadingPoint]) -> None:
        records = [p for p in map(to_point, points) if p is not None]
        if not records:
            return
        try:
            self._write_api.write(bucket=self.bucket, org=self.org, record=records)  # all ms: one request
        except ApiException as exc:
            if exc.status in REJECTED_STATUSES:
                log.error(
                    "InfluxDB %s refused readings of this batch (%s points, first message %s): %s; "
                    "they stay in the message log",
                    self.url,
                    len(records),
                    points[0].msg_id,
                    _body(exc),
                )
                return
            raise TelemetryUnavailable(self._advice(f"HTTP {exc.status} {exc.reason}: {_body(exc)}")) from exc
        except (HTTPError, OSError) as exc:
            raise TelemetryUnavailable(self._advice(f"{type(exc).__name__}: {exc}")) from exc

    def close(self) -> None:
        self._write_api.close()
        self._client.close()

    def _advice(self, what: str) -> str:
        return (
            f"could not write telemetry to InfluxDB at {self.url} (org {self.org!r}, bucket {self.bucket!r}, "
            f"timeout {self.timeout_s:g} s): {what}. Check that the server is up and reachable at "
            "PATROL_INFLUX_URL, that PATROL_INFLUX_TOKEN may write to PATROL_INFLUX_BUCKET in PATROL_INFLUX_ORG; "
            "the readings stay unacknowledged and come again"
        )


def _body(exc: ApiException) -> str:
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body or "")
    return body.strip()[:300]


def sink_from_settings(settings: Settings) -> TelemetrySink:
    """`InfluxSink` when `PATROL_INFLUX_URL` names a server, else `NullSink` (telemetry stays in SQL)."""
    if not settings.influx_url:
        return NullSink()
    token = settings.influx_token.get_secret_value() if settings.influx_token else None
    return InfluxSink(
        settings.influx_url, token, settings.influx_org, settings.influx_bucket, settings.influx_timeout_s
    )
