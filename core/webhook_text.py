"""What webhook messages share: severity order, size limits, the bilingual labels, the request to
make and how its URL is shown in logs (robot keys masked). Below both core.webhooks (targets and
notices) and core.webhook_render (the bodies), so neither imports the other's internals."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from core.outbound import Name
from core.severity import SEVERITIES, SEVERITY_NAMES, severity_rank

#: Most severe first in a message; also what a target's `min_severity` compares (core.webhooks).
SEVERITY_RANK: dict[str, int] = {s: severity_rank(s) for s in SEVERITIES}
#: Byte limits: WeCom's markdown content (errcode 40058 beyond it), DingTalk's and Feishu's request body
#: (20 KB, kept under with a margin), and a generous bound for generic receivers.
MAX_BYTES: dict[str, int] = {"wecom": 4096, "dingtalk": 19_000, "feishu": 19_000, "generic": 65_536}
MAX_LINE_CHARS = 300  # one notice line; a longer one is cut with "…" before grouping
MAX_LINES = 10  # lines per notice in a robot message (the generic body keeps them all)

SEVERITY_TEXT = SEVERITY_NAMES  # the names the alarm carries on the screen
KIND_TEXT: dict[str, Name] = {
    "alarm_raised": Name(zh="告警", en="Alarm"),
    "alarm_rose": Name(zh="告警升级", en="Alarm worse"),
    "alarm_cleared": Name(zh="告警恢复", en="Alarm cleared"),
    "alarm_flapping": Name(zh="告警反复", en="Alarm flapping"),
    "ticket_opened": Name(zh="新工单", en="Ticket opened"),
    "ticket_escalated": Name(zh="工单升级", en="Ticket escalated"),
    "ticket_reminder": Name(zh="工单提醒", en="Ticket reminder"),
    "ticket_acknowledged": Name(zh="工单已接", en="Ticket acknowledged"),
    "ticket_closed": Name(zh="工单关闭", en="Ticket closed"),
    "muster": Name(zh="紧急集合", en="Emergency muster"),
    "test": Name(zh="测试消息", en="Test message"),
}
OPEN_TEXT = Name(zh="查看", en="Open")


@dataclass(frozen=True)
class Request:
    """One HTTP POST to make. The url may hold a credential: log `safe_url`, never `url`."""

    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    method: str = "POST"

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"Request({self.method} {self.safe_url}, {len(self.body)} bytes)"


def redact_url(url: str) -> str:
    """The url for logs: query values and long path segments (robot keys, hook ids) masked."""
    parts = urlsplit(url)
    path = "/".join(s if len(s) < 16 else s[:4] + "…" for s in parts.path.split("/"))
    query = "&".join(f"{k}=…" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, parts.hostname or "", path, query, ""))
