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
group_wait), most severe first, cut with "… and N more" at the robot's size limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit
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

Format = Literal["generic", "wecom", "dingtalk", "feishu"]
Language = Literal["zh", "en", "both"]
Severity = Literal["warning", "major", "critical"]
SEVERITY_RANK: dict[str, int] = {"warning": 1, "major": 2, "critical": 3}
NoticeKind = Literal[
    "alarm_raised", "alarm_rose", "alarm_cleared", "alarm_flapping",
    "ticket_opened", "ticket_escalated", "ticket_reminder", "ticket_acknowledged", "ticket_closed",
    "muster", "test",
]  # fmt: skip
#: Byte limits: WeCom's markdown content (errcode 40058 beyond it), DingTalk's and Feishu's request body
#: (20 KB, kept under with a margin), and a generous bound for generic receivers.
MAX_BYTES: dict[str, int] = {"wecom": 4096, "dingtalk": 19_000, "feishu": 19_000, "generic": 65_536}
MAX_LINE_CHARS = 300  # one notice line; a longer one is cut with "…" before grouping
MAX_LINES = 10  # lines per notice in a robot message (the generic body keeps them all)

SEVERITY_TEXT = {
    "warning": Name(zh="一般", en="Warning"),
    "major": Name(zh="重要", en="Major"),
    "critical": Name(zh="紧急", en="Critical"),
}
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


def render(target: WebhookTarget, notices: list[Notice], now: datetime) -> Request:
    """One request telling `target` about `notices` (at least one), signed for the time `now`."""
    if not notices:
        raise ValueError("render needs at least one notice")
    ordered = sorted(notices, key=lambda n: -SEVERITY_RANK.get(n.severity or "", 0))
    secret = target.secret.get_secret_value() if target.secret else None
    headers = {"Content-Type": "application/json; charset=utf-8"}
    limit = MAX_BYTES[target.format]
    if target.format == "generic":
        body = _fit(len(ordered), lambda k: _generic(ordered, k, now), limit)[1]
        if secret:
            ts = str(_epoch(now, 1))
            digest = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers |= {"X-Patrol-Timestamp": ts, "X-Patrol-Signature": f"sha256={digest}"}
        return Request(target.url, headers, body)
    text = _Texts(target, ordered)
    if target.format == "wecom":
        content = text.fit(lambda k: text.markdown(k, "\n").encode(), limit).decode()
        return Request(target.url, headers, _json({"msgtype": "markdown", "markdown": {"content": content}}))
    if target.format == "dingtalk":
        url = target.url
        if secret:
            ms = str(_epoch(now, 1000))
            sign = _b64_hmac(secret.encode(), f"{ms}\n{secret}".encode())
            url += ("&" if urlsplit(url).query else "?") + f"timestamp={ms}&sign={quote_plus(sign)}"
        title = _cut(text.title, 64)  # what the phone's notification shows

        def dingtalk(k: int) -> bytes:
            return _json({"msgtype": "markdown", "markdown": {"title": title, "text": text.markdown(k, "\n\n")}})

        body = text.fit(dingtalk, limit)
        return Request(url, headers, body)
    signed: dict[str, str] = {}
    if secret:
        seconds = str(_epoch(now, 1))
        signed = {"timestamp": seconds, "sign": _b64_hmac(f"{seconds}\n{secret}".encode(), b"")}
    locale = "en_us" if target.language == "en" else "zh_cn"

    def feishu(k: int) -> bytes:
        post = {locale: {"title": text.title, "content": text.post(k)}}
        return _json({**signed, "msg_type": "post", "content": {"post": post}})

    return Request(target.url, headers, text.fit(feishu, limit))


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


def _b64_hmac(key: bytes, msg: bytes) -> str:
    return base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _epoch(now: datetime, per_second: int) -> int:
    """Whole seconds (1) or milliseconds (1000) since 1970, exactly (no float rounding)."""
    return (now - _EPOCH) * per_second // timedelta(seconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fit(count: int, build: Callable[[int], bytes], limit: int) -> tuple[int, bytes]:
    """`build(k)` for the largest k ≤ count whose output fits `limit` (0: only the count and "… N more"),
    found by bisection since the output grows with k."""
    low, high = 0, count
    while low < high:
        mid = (low + high + 1) // 2
        if len(build(mid)) <= limit:
            low = mid
        else:
            high = mid - 1
    return low, build(low)


def _generic(notices: list[Notice], k: int, now: datetime) -> bytes:
    return _json(
        {
            "source": "patrol",
            "sent_at": now.astimezone(UTC).isoformat(),
            "count": len(notices),
            "omitted": len(notices) - k,
            "notices": [n.to_dict() for n in notices[:k]],
        }
    )


class _Texts:
    """The people-facing text of a group of notices in the target's language(s), laid out per format."""

    def __init__(self, target: WebhookTarget, notices: list[Notice]) -> None:
        self.language = target.language
        self.zone = ZoneInfo(target.timezone)
        self.notices = notices
        self.max_lines = MAX_LINES
        self.header = self._header() if len(notices) > 1 else None
        self.title = self.header or self._title(notices[0])

    def pick(self, name: Name) -> str:
        if self.language != "both" or name.zh == name.en:
            return name.en if self.language == "en" else name.zh
        return f"{name.zh} / {name.en}"

    def _header(self) -> str:
        sites = list(dict.fromkeys(self._site(n) for n in self.notices))
        counts: dict[str, int] = {}
        for n in self.notices:
            group = n.kind.split("_")[0] if n.kind.startswith(("alarm_", "ticket_")) else "other"
            counts[group] = counts.get(group, 0) + 1
        zh = "，".join(f"{_GROUP_ZH[g]} {c} 条" for g, c in counts.items())
        en = ", ".join(f"{c} {_GROUP_EN[g]}{'' if c == 1 else 's'}" for g, c in counts.items())
        return f"{(', ' if self.language == 'en' else '、').join(sites)}: {self.pick(Name(zh=zh, en=en))}"

    def _site(self, n: Notice) -> str:
        return self.pick(n.site_name) if n.site_name else n.site

    def _title(self, n: Notice) -> str:
        severity = f"[{self.pick(SEVERITY_TEXT[n.severity])}] " if n.severity else ""
        return f"{severity}{self.pick(KIND_TEXT[n.kind])}: {_cut(self.pick(n.title))}"

    def _meta(self, n: Notice) -> str:
        parts = [n.at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M"), self._site(n)]
        if n.ticket_id is not None:
            parts.append(f"{self.pick(Name(zh='工单', en='Ticket'))} #{n.ticket_id}")
        return " · ".join(parts)

    def _lines(self, n: Notice) -> list[str]:
        lines = [_cut(self.pick(line)) for line in n.lines[: self.max_lines]]
        if len(n.lines) > self.max_lines:
            lines.append(self._more(len(n.lines) - self.max_lines))
        return lines

    def fit(self, build: Callable[[int], bytes], limit: int) -> bytes:
        """The most notices that fit; when not even the first fits, fewer lines per notice, then none."""
        for cap in (MAX_LINES, 3, 0):
            self.max_lines = cap
            k, body = _fit(len(self.notices), build, limit)
            if k:
                break
        return body

    def _more(self, n: int) -> str:
        return self.pick(Name(zh=f"… 另有 {n} 条", en=f"… and {n} more"))

    def markdown(self, k: int, newline: str) -> str:
        """Markdown both robots render; DingTalk needs a blank line (`newline`) where WeCom breaks on one."""
        parts = [f"### {self.header}"] if self.header else []
        for n in self.notices[:k]:
            block = [f"**{self._title(n)}**", self._meta(n), *(f"- {line}" for line in self._lines(n))]
            if n.url:
                block.append(f"[{self.pick(OPEN_TEXT)}]({n.url})")
            parts.append(newline.join(block))
        if k < len(self.notices):
            parts.append(self._more(len(self.notices) - k))
        return "\n\n".join(parts)

    def post(self, k: int) -> list[list[dict[str, str]]]:
        """Feishu rich text: paragraphs of text and link elements; the post's title is `self.title`."""
        paragraphs: list[list[dict[str, str]]] = []
        for i, n in enumerate(self.notices[:k]):
            if i or self.header:
                paragraphs.append([{"tag": "text", "text": self._title(n)}])
            paragraphs.append([{"tag": "text", "text": self._meta(n)}])
            paragraphs.extend([{"tag": "text", "text": f"• {line}"}] for line in self._lines(n))
            if n.url:
                paragraphs.append([{"tag": "a", "text": self.pick(OPEN_TEXT), "href": n.url}])
        if k < len(self.notices):
            paragraphs.append([{"tag": "text", "text": self._more(len(self.notices) - k)}])
        return paragraphs


_GROUP_ZH = {"alarm": "告警", "ticket": "工单", "other": "通知"}
_GROUP_EN = {"alarm": "alarm", "ticket": "ticket", "other": "notice"}


def _cut(text: str, limit: int = MAX_LINE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
