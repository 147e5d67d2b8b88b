"""Turning raw bytes on a topic into an `Accepted` message or a `Rejected` one with a reason.

Never raises for bad input: every failure becomes a `Rejected` the caller quarantines.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from core.contract import (
    MAX_PAYLOAD_BYTES,
    PAYLOADS,
    EventPayload,
    RejectReason,
    TelemetryPayload,
    is_own_output,
    parse_topic,
)
from core.directory import Directory
from core.ingest import channel_fits
from gateway.messages import Accepted, Received, Rejected

_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")


def decode(raw: Received, directory: Directory) -> Accepted | Rejected | None:
    """None for the gateway's own publications (acks, out/ events) seen through the catch-all."""
    if is_own_output(raw.topic):
        return None
    topic = parse_topic(raw.topic)
    if topic is None or not topic.inbound:
        return Rejected(raw, RejectReason.UNKNOWN_TOPIC, f"topic {raw.topic!r} is not in device contract v1")
    if len(raw.payload) > MAX_PAYLOAD_BYTES:
        return Rejected(raw, RejectReason.TOO_LARGE, f"{len(raw.payload)} bytes > {MAX_PAYLOAD_BYTES}", topic)
    try:
        body = json.loads(raw.payload.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, absurd nesting
        return Rejected(raw, RejectReason.BAD_JSON, f"not UTF-8 JSON: {type(exc).__name__}: {exc}"[:500], topic)
    if not isinstance(body, dict):
        return Rejected(raw, RejectReason.BAD_JSON, "payload must be a JSON object", topic)
    msg_id = _usable_id(body.get("id"))
    try:
        model = PAYLOADS[topic.channel].model_validate(body)
        if isinstance(model, TelemetryPayload):
            model.typed_values()
    except ValidationError as exc:
        return Rejected(raw, _schema_reason(exc), _summarise(exc), topic, msg_id)
    device = directory.device(topic.site, topic.device)
    if device is None:
        return Rejected(
            raw,
            RejectReason.UNKNOWN_DEVICE,
            f"device {topic.device!r} is not registered at site {topic.site!r}: add it to the site file",
            topic,
            msg_id,
        )
    if not channel_fits(topic.role, device.kind):
        return Rejected(
            raw,
            RejectReason.WRONG_DEVICE_KIND,
            f"device {device.code!r} is a {device.kind}, it cannot publish on {topic.role}/{topic.channel}",
            topic,
            msg_id,
        )
    if isinstance(model, TelemetryPayload | EventPayload) and model.kind != device.kind:
        return Rejected(
            raw,
            RejectReason.KIND_MISMATCH,
            f"device {device.code!r} is a {device.kind} sensor but sent a {model.kind} {topic.channel}: "
            f"fix the kind the device sends, or its kind in the site file",
            topic,
            msg_id,
        )
    return Accepted(raw=raw, topic=topic, device=device, msg_id=msg_id, model=model)


def _schema_reason(exc: ValidationError) -> RejectReason:
    """`bad_timestamp` when only `ts` is wrong, so the installer knows to fix the device's clock or
    its time format; `bad_schema` for anything else."""
    locs = {err["loc"][:1] for err in exc.errors()}
    return RejectReason.BAD_TIMESTAMP if locs == {("ts",)} else RejectReason.BAD_SCHEMA


def _usable_id(value: Any) -> str | None:
    """The id to echo in a refusal, only if it could be a valid id: never one that cannot be
    encoded or stored (lone surrogates, control characters), which would poison the batch."""
    if isinstance(value, str) and _ID.match(value):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return value
    return None


def _summarise(exc: ValidationError) -> str:
    parts: list[str] = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
