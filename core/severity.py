"""Severity of alarms, tickets and notices: one order and one pair of names for all of them, so an
alarm called 严重 on the screen is not called 重要 in the robot's message."""

from __future__ import annotations

from typing import Literal, get_args

from core.outbound import Name

Severity = Literal["warning", "major", "critical"]
#: Ordered: an alarm or a ticket only ever rises along this tuple.
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
SEVERITY_NAMES: dict[str, Name] = {
    "warning": Name(zh="预警", en="Warning"),
    "major": Name(zh="严重", en="Major"),
    "critical": Name(zh="紧急", en="Critical"),
}


def severity_rank(severity: str | None) -> int:
    """Order of severities for comparison; none (or an unknown one) is below `warning`."""
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 0
