"""The remembered state of one alarm rule (one device, one alarm type) and the decisions made on it.

The state is a frozen value stored as JSON (`rule_states` row, locked while a reading is applied),
so a restart or another gateway worker continues exactly where the last reading left off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from core.outbound import Name
from core.severity import SEVERITIES, Severity

Action = Literal["raise", "rise", "fall", "clear"]
ACTIONS: tuple[Action, ...] = get_args(Action)
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Pending:
    """An alarm condition seen but not yet raised: it must hold `for_s` and `count` readings first."""

    severity: Severity
    since: datetime
    count: int


@dataclass(frozen=True, slots=True)
class Clearing:
    """An active alarm whose readings are below its severity; it falls to `to` (the worst level seen
    since `since`; None: clears) once that has held `clear_delay_s` and `clear_count` readings."""

    to: Severity | None
    since: datetime
    count: int


@dataclass(frozen=True, slots=True)
class RuleState:
    severity: Severity | None = None  # the active alarm's severity; None: no alarm
    pending: Pending | None = None
    clearing: Clearing | None = None
    transitions: tuple[datetime, ...] = ()  # recent raise/rise/fall/clear times, within the flap window
    flapping: bool = False
    flap_peak: Severity | None = None  # worst severity while flapping: a rise above it is never quiet
    last_at: datetime | None = None  # observed time of the last reading applied (older ones are ignored)
    last_level: Severity | None = None  # the level that reading alone showed
    last_value: Mapping[str, Any] = field(default_factory=dict)  # JSON scalars, for display

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 text); `from_json` reads it back equal."""
        return {
            "v": STATE_VERSION,
            "severity": self.severity,
            "pending": None
            if self.pending is None
            else {"severity": self.pending.severity, "since": _iso(self.pending.since), "count": self.pending.count},
            "clearing": None
            if self.clearing is None
            else {"to": self.clearing.to, "since": _iso(self.clearing.since), "count": self.clearing.count},
            "transitions": [_iso(t) for t in self.transitions],
            "flapping": self.flapping,
            "flap_peak": self.flap_peak,
            "last_at": None if self.last_at is None else _iso(self.last_at),
            "last_level": self.last_level,
            "last_value": dict(self.last_value),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        """Read a stored state; a state from a newer version or a damaged one raises ValueError."""
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"alarm rule state version {data.get('v')!r} is not {STATE_VERSION}")
        try:
            p, c = data.get("pending"), data.get("clearing")
            return cls(
                severity=_sev(data.get("severity")),
                pending=None if p is None else Pending(_sev_req(p["severity"]), _dt(p["since"]), int(p["count"])),
                clearing=None if c is None else Clearing(_sev(c["to"]), _dt(c["since"]), int(c["count"])),
                transitions=tuple(_dt(t) for t in data.get("transitions", ())),
                flapping=bool(data.get("flapping", False)),
                flap_peak=_sev(data.get("flap_peak")),
                last_at=None if data.get("last_at") is None else _dt(data["last_at"]),
                last_level=_sev(data.get("last_level")),
                last_value=dict(data.get("last_value") or {}),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"damaged alarm rule state: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class Decision:
    """What one reading, event, status or due time did to an alarm.

    `action` None: nothing to tell anyone. `quiet`: the change happened (store it) but sends no
    notification, because the alarm is flapping and `flapping_started` already said so. `due_at`:
    when `evaluate_due` must run if nothing else arrives (a duration completing, a clear delay
    ending, a door limit, the end of flapping); None: nothing is waiting.
    """

    state: RuleState
    action: Action | None
    severity: Severity | None
    due_at: datetime | None
    flapping_started: bool = False
    flapping_ended: bool = False
    quiet: bool = False
    stale: bool = False  # an out-of-order reading, ignored: the state is the one passed in
    value: Name | None = None


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("alarm rule times must be timezone-aware")
    return at.isoformat()


def _dt(text: Any) -> datetime:
    at = datetime.fromisoformat(str(text))
    if at.tzinfo is None:
        raise ValueError(f"stored time {text!r} has no offset")
    return at


def _sev(value: Any) -> Severity | None:
    return None if value is None else _sev_req(value)


def _sev_req(value: Any) -> Severity:
    for s in SEVERITIES:
        if value == s:
            return s
    raise ValueError(f"unknown severity {value!r}; severities: {', '.join(SEVERITIES)}")
