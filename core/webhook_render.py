"""How a group of notices becomes the one HTTP request each robot takes (split out of core/webhooks.py,
which re-exports `render`, `Request` and the limits): bodies, size limits and signatures, signed with
the time passed in, so the worker re-renders on every attempt and a retried message is never sent with
an expired signature. Pure: no I/O; the formats and their sources are listed in core/webhooks.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, urlsplit
from zoneinfo import ZoneInfo

from core.outbound import Name
from core.webhook_text import (
    KIND_TEXT,
    MAX_BYTES,
    MAX_LINE_CHARS,
    MAX_LINES,
    OPEN_TEXT,
    SEVERITY_RANK,
    SEVERITY_TEXT,
    Request,
)
from core.webhooks import Notice, WebhookTarget


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
