"""Webhook notifications: which group robots to tell (targets), what to tell them (notices) and the one
HTTP request a group of notices becomes in each robot's format, signed with the time passed in.

Pure: the webhook worker (gateway) reads the outbox, calls `render` and posts the request itself, then
asks `failure_reason` whether the robot took it. Formats, checked against the robots' documentation:
- WeCom 企业微信 group robot: {"msgtype": "markdown", "markdown": {"content": …}}, content ≤ 4096 bytes,
  no signature (the key in the URL is the credential).
  https://developer.work.weixin.qq.com/document/path/99110
- DingTalk 钉钉 custom robot, 加签: `&timestamp=<ms>&sign=<urlencode(base64(HmacSHA256(key=secret,
  msg="{timestamp}\\n{secret}")))>` on the URL; body {"msgtype": "markdown", "markdown": {"title", "text"}}.
  https://open.dingtalk.com/document/orgapp/customize-robot-security-settings
- Feishu 飞书 custom bot, 签名校验: body carries "timestamp" (seconds, a string) and "sign" =
  base64(HmacSHA256(key="{timestamp}\\n{secret}", msg=b"")); request body ≤ 20 KB.
  https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
- generic: {"source": "patrol", "notices": […]}; with a secret, `X-Patrol-Signature: sha256=<hex
  HmacSHA256(secret, "{X-Patrol-Timestamp}." + body)>` so the receiver can check origin and age.
Several notices waiting for one target go out as one message with a count line (Alertmanager's
group_wait), most severe first, cut with "… and N more" at the robot's size limit. The bodies are built in
core/webhook_render.py (re-exported here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from core.outbound import Name
from core.severity import Severity
from core.webhook_text import SEVERITY_RANK, redact_url

Format = Literal["generic", "wecom", "dingtalk", "feishu"]
Language = Literal["zh", "en", "both"]
NoticeKind = Literal[
    "alarm_raised", "alarm_rose", "alarm_cleared", "alarm_flapping",
    "ticket_opened", "ticket_escalated", "ticket_reminder", "ticket_acknowledged", "ticket_closed",
    "muster", "round_missed", "test",
]  # fmt: skip


class WebhookConfigError(ValueError):
    """PATROL_WEBHOOKS cannot be used; the message says which target and what to change (never a secret)."""


class WebhookTarget(BaseModel):
    """One group robot or HTTP receiver. Signing is on exactly when `secret` is set: DingTalk and Feishu
    robots may instead be secured by keyword or IP allow-list, and WeCom robots have no signature."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str = Field(repr=False)  # WeCom's key, DingTalk's access_token and Feishu's hook id are credentials
    format: Format = "generic"
    secret: SecretStr | None = None
    language: Language = "both"
    sites: frozenset[str] | None = None  # only these site codes; None: every site
    min_severity: Severity | None = None  # notices below it are not sent; notices without severity always are
    timezone: str = "Asia/Shanghai"  # times in messages are shown in the zone the group's readers live in

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// address with a host")
        if any(key in ("timestamp", "sign") for key, _ in parse_qsl(parts.query)):
            raise ValueError("remove timestamp and sign from the url: they are added to each request from secret")
        return url.strip()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone: use an IANA name such as Asia/Shanghai, or UTC") from None
        return name

    @model_validator(mode="after")
    def _secret_fits_format(self) -> WebhookTarget:
        if self.secret is not None and not self.secret.get_secret_value().strip():
            raise ValueError("secret is empty: paste the robot's signing secret or remove the key")
        if self.secret is not None and self.format == "wecom":
            raise ValueError("WeCom robots have no signature: remove secret (the key in the url is the credential)")
        if self.sites is not None and not self.sites:
            raise ValueError("sites is empty: list site codes or remove the key to receive every site")
        return self

    def wants(self, notice: Notice) -> bool:
        """Whether this target is told about `notice` (site filter and minimum severity)."""
        if self.sites is not None and notice.site not in self.sites:
            return False
        if self.min_severity is None or notice.severity is None:
            return True
        return SEVERITY_RANK[notice.severity] >= SEVERITY_RANK[self.min_severity]

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)


def parse_targets(json_text: str) -> list[WebhookTarget]:
    """The targets in the PATROL_WEBHOOKS setting (a JSON list; empty or blank: none)."""
    if not json_text.strip():
        return []
    try:
        items = json.loads(json_text)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}"
        raise WebhookConfigError(f"PATROL_WEBHOOKS is not valid JSON ({where}): {e.msg}") from None
    if not isinstance(items, list):
        raise WebhookConfigError('PATROL_WEBHOOKS must be a JSON list: [{"name": …, "url": …, "format": …}, …]')
    targets: list[WebhookTarget] = []
    for i, item in enumerate(items):
        label = f"PATROL_WEBHOOKS[{i}]" + (f" ({item['name']!r})" if isinstance(item, dict) and "name" in item else "")
        try:
            target = WebhookTarget.model_validate(item)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'target'}: {err['msg']}" for err in e.errors())
            raise WebhookConfigError(f"{label}: {problems}") from None
        if any(t.name == target.name for t in targets):
            raise WebhookConfigError(f"{label}: name {target.name!r} is used twice: give each target its own name")
        targets.append(target)
    return targets


@dataclass(frozen=True)
class Notice:
    """What one notification says, in both languages; stored in the outbox as `to_dict()` and read back
    with `Notice.from_dict`, so the message is rendered only when it is sent (grouped with others)."""

    kind: NoticeKind
    site: str
    title: Name
    at: AwareDatetime
    lines: tuple[Name, ...] = ()
    severity: Severity | None = None
    site_name: Name | None = None
    ticket_id: int | None = None
    alarm_id: int | None = None
    url: str | None = None  # a link into the control room

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("Notice.at must be timezone-aware")

    def to_dict(self) -> dict[str, Any]:
        return _NOTICE.dump_python(self, mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notice:
        return _NOTICE.validate_python(data)


_NOTICE = TypeAdapter(Notice)


def failure_reason(format: Format, status: int, body: bytes) -> str | None:
    """Why the receiver did not take the message, or None when it did. The robots answer HTTP 200 even when
    they refuse (bad signature, too long, rate limit): their `errcode` (WeCom, DingTalk) or `code` (Feishu;
    `StatusCode` in older answers) must be 0."""
    snippet = body[:300].decode("utf-8", "replace")
    if not 200 <= status < 300:
        return f"HTTP {status}: {snippet}"
    if format == "generic":
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return f"HTTP {status} with an unreadable answer: {snippet}"
    if format == "feishu":
        code, message = answer.get("code", answer.get("StatusCode")), answer.get("msg", answer.get("StatusMessage"))
    else:
        code, message = answer.get("errcode"), answer.get("errmsg")
    if type(code) is int and code == 0:
        return None
    return f"{format} error {code}: {message}"


def accepted(format: Format, status: int, body: bytes) -> bool:
    return failure_reason(format, status, body) is None
