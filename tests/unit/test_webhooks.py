"""Webhook targets, grouping and the robots' formats (core/webhooks.py): bodies and signatures are checked
against HMAC values computed here independently, with a fixed time and secret, as the robots' docs define
them (WeCom: no signature; DingTalk 加签; Feishu 签名校验; generic X-Patrol-Signature)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from core.outbound import Name
from core.webhook_render import render
from core.webhook_text import MAX_BYTES, Request
from core.webhooks import (
    Notice,
    WebhookConfigError,
    WebhookTarget,
    accepted,
    failure_reason,
    parse_targets,
)

NOW = datetime(2026, 11, 28, 8, 6, 0, 123_000, tzinfo=UTC)  # 16:06:00.123 in Shanghai
SECRET = "SECd0e1f2a3b4c5d6e7f8091a2b3c4d5e6f70819a2b3c4d5e6f708192a3b4c5d6e7f8"
DINGTALK_URL = "https://oapi.dingtalk.com/robot/send?access_token=4f7a0c1e9b8d2a6f3c5e7b9d1a3c5e7f"
FEISHU_URL = "https://open.feishu.cn/open-apis/bot/v2/hook/5e3d587e-d78e-4a07-bd07-265f269f86fd"
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7aoc-4bc4-97a0-0ec2sifa5aaa"
LIYUAN = Name(zh="荔园", en="Liyuan")


def notice(n: int = 1, kind: str = "alarm_raised", severity: str | None = "critical", **kw: Any) -> Notice:
    """A notice as the outbox stores it; `lines` is how many reading lines, other keys override fields."""
    lines = kw.pop("lines", 1)
    values: dict[str, Any] = {
        "kind": kind,
        "site": "liyuan",
        "site_name": LIYUAN,
        "title": Name(zh=f"3栋 B1 水浸 {n}", en=f"Building 3 B1 water leak {n}"),
        "at": datetime(2026, 11, 28, 8, 5, tzinfo=UTC) + timedelta(seconds=n),
        "lines": tuple(Name(zh=f"水位 {35 + i} mm", en=f"Water level {35 + i} mm") for i in range(lines)),
        "severity": severity,
        "ticket_id": 12,
        "alarm_id": 40 + n,
        "url": "https://patrol.example/tickets/12",
    }
    return Notice.from_dict({**Notice(**values).to_dict(), **kw})


def target(fmt: str, url: str = DINGTALK_URL, **kw: Any) -> WebhookTarget:
    return WebhookTarget.model_validate({"name": "ops", "url": url, "format": fmt, **kw})


def body(request: Request) -> dict[str, Any]:
    parsed = json.loads(request.body)
    assert isinstance(parsed, dict)
    return parsed


def hmac_b64(key: bytes, msg: bytes) -> str:
    return base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


# --- the formats and their signatures ---------------------------------------------------------------


def test_dingtalk_signs_the_url_with_ms_timestamp_and_urlencoded_hmac_of_timestamp_newline_secret() -> None:
    request = render(target("dingtalk", secret=SECRET), [notice()], NOW)
    query = parse_qs(urlsplit(request.url).query)
    assert query["access_token"] == ["4f7a0c1e9b8d2a6f3c5e7b9d1a3c5e7f"]
    assert query["timestamp"] == ["1795853160123"]  # milliseconds, not rounded through a float
    assert query["sign"] == [hmac_b64(SECRET.encode(), f"1795853160123\n{SECRET}".encode())]
    assert request.url.endswith("%3D")  # the base64 sign (always "=" padded for SHA-256) is url-encoded
    sent = body(request)
    assert sent["msgtype"] == "markdown"
    title = "[紧急 / Critical] 告警 / Alarm: 3栋 B1 水浸 1 / Building 3 B1 water leak 1"
    assert sent["markdown"]["title"] == title[:63] + "…"  # the phone's notification line, cut at 64
    assert "- 水位 35 mm / Water level 35 mm" in sent["markdown"]["text"]


def test_dingtalk_without_secret_leaves_the_url_alone_and_a_bare_url_gets_a_query() -> None:
    assert render(target("dingtalk"), [notice()], NOW).url == DINGTALK_URL
    signed = render(target("dingtalk", url="https://robot.example/send", secret="s"), [notice()], NOW)
    assert signed.url.startswith("https://robot.example/send?timestamp=1795853160123&sign=")


def test_feishu_puts_seconds_timestamp_and_hmac_keyed_by_timestamp_newline_secret_over_empty_message() -> None:
    sent = body(render(target("feishu", url=FEISHU_URL, secret=SECRET), [notice()], NOW))
    assert sent["timestamp"] == "1795853160"  # seconds, as a string
    assert sent["sign"] == hmac_b64(f"1795853160\n{SECRET}".encode(), b"")
    assert sent["msg_type"] == "post"
    post = sent["content"]["post"]["zh_cn"]
    assert post["title"] == "[紧急 / Critical] 告警 / Alarm: 3栋 B1 水浸 1 / Building 3 B1 water leak 1"
    texts = [element for paragraph in post["content"] for element in paragraph]
    assert {"tag": "text", "text": "• 水位 35 mm / Water level 35 mm"} in texts
    assert {"tag": "a", "text": "查看 / Open", "href": "https://patrol.example/tickets/12"} in texts


def test_feishu_without_secret_has_no_sign_and_english_goes_under_en_us() -> None:
    sent = body(render(target("feishu", url=FEISHU_URL, language="en"), [notice()], NOW))
    assert "sign" not in sent and "timestamp" not in sent
    assert sent["content"]["post"]["en_us"]["title"] == "[Critical] Alarm: Building 3 B1 water leak 1"


def test_wecom_is_markdown_content_without_signature_in_the_chosen_language() -> None:
    request = render(target("wecom", url=WECOM_URL, language="zh"), [notice()], NOW)
    assert request.url == WECOM_URL
    sent = body(request)
    assert list(sent) == ["msgtype", "markdown"] and sent["msgtype"] == "markdown"
    assert sent["markdown"]["content"] == (
        "**[紧急] 告警: 3栋 B1 水浸 1**\n"
        "2026-11-28 16:05 · 荔园 · 工单 #12\n"  # shown in the target's zone (Asia/Shanghai)
        "- 水位 35 mm\n"
        "[查看](https://patrol.example/tickets/12)"
    )
    assert request.headers["Content-Type"].startswith("application/json")


def test_generic_body_carries_the_notices_with_iso_times_and_an_hmac_over_timestamp_and_body() -> None:
    request = render(target("generic", url="https://hooks.example/patrol", secret="s3cret"), [notice()], NOW)
    sent = body(request)
    assert sent["source"] == "patrol" and sent["count"] == 1 and sent["omitted"] == 0
    assert sent["sent_at"] == "2026-11-28T08:06:00.123000+00:00"
    assert sent["notices"][0]["at"] == "2026-11-28T08:05:01Z"
    assert Notice.from_dict(sent["notices"][0]) == notice()
    assert request.headers["X-Patrol-Timestamp"] == "1795853160"
    expected = hmac.new(b"s3cret", b"1795853160." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Patrol-Signature"] == f"sha256={expected}"
    unsigned = render(target("generic", url="https://hooks.example/patrol"), [notice()], NOW)
    assert "X-Patrol-Signature" not in unsigned.headers


# --- grouping and size bounds ------------------------------------------------------------------------


def test_a_group_becomes_one_message_with_a_count_line_most_severe_first() -> None:
    group = [notice(1, severity="warning"), notice(2), notice(3, severity="major"), notice(4, kind="ticket_opened")]
    zh = body(render(target("wecom", url=WECOM_URL, language="zh"), group, NOW))["markdown"]["content"]
    assert zh.startswith("### 荔园: 告警 3 条，工单 1 条\n")
    order = [zh.index(f"水浸 {n}**") for n in (2, 4, 3, 1)]  # critical (alarm, then ticket), major, warning
    assert order == sorted(order)
    en = body(render(target("dingtalk", language="en"), group, NOW))["markdown"]
    assert en["title"] == "Liyuan: 3 alarms, 1 ticket"
    assert en["text"].startswith("### Liyuan: 3 alarms, 1 ticket\n\n")


@pytest.mark.parametrize(
    ("fmt", "url", "measure"),
    [
        ("wecom", WECOM_URL, lambda r: len(json.loads(r.body)["markdown"]["content"].encode())),
        ("dingtalk", DINGTALK_URL, lambda r: len(r.body)),
        ("feishu", FEISHU_URL, lambda r: len(r.body)),
    ],
)
def test_a_large_group_is_cut_to_the_robots_limit_with_and_n_more(fmt: str, url: str, measure: Any) -> None:
    group = [notice(n, lines=3) for n in range(300)]
    request = render(target(fmt, url=url, secret=None if fmt == "wecom" else "s"), group, NOW)
    assert measure(request) <= MAX_BYTES[fmt]
    text = request.body.decode()
    shown = text.count("水位 35 mm")
    assert 1 < shown < 300
    assert f"… 另有 {300 - shown} 条 / … and {300 - shown} more" in text


def test_the_generic_body_is_bounded_and_says_how_many_were_left_out() -> None:
    group = [notice(n, lines=5) for n in range(1000)]
    request = render(target("generic", url="https://hooks.example/patrol"), group, NOW)
    sent = body(request)
    assert len(request.body) <= MAX_BYTES["generic"]
    assert sent["count"] == 1000 and sent["omitted"] == 1000 - len(sent["notices"]) > 0


def test_one_notice_too_long_for_wecom_keeps_its_title_and_drops_lines() -> None:
    long_lines = [{"zh": "长" * 400, "en": "long " * 80} for _ in range(10)]
    big = Notice.from_dict({**notice().to_dict(), "lines": long_lines})
    content = body(render(target("wecom", url=WECOM_URL), [big], NOW))["markdown"]["content"]
    assert len(content.encode()) <= MAX_BYTES["wecom"]
    assert content.startswith("**[紧急 / Critical] 告警 / Alarm: 3栋 B1 水浸 1")
    assert "… 另有 7 条 / … and 7 more" in content  # 3 of the 10 lines kept, each cut with "…"


def test_render_needs_a_notice() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render(target("wecom", url=WECOM_URL), [], NOW)


# --- receivers' answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "status", "answer", "ok"),
    [
        ("wecom", 200, b'{"errcode":0,"errmsg":"ok"}', True),
        ("wecom", 200, b'{"errcode":40058,"errmsg":"markdown.content exceed max length 4096"}', False),
        ("wecom", 200, b"<html>busy</html>", False),
        ("wecom", 502, b'{"errcode":0}', False),
        ("dingtalk", 200, b'{"errcode":0,"errmsg":"ok"}', True),
        ("dingtalk", 200, b'{"errcode":310000,"errmsg":"sign not match"}', False),
        ("dingtalk", 200, b'{"errmsg":"ok"}', False),  # no errcode: not a robot's yes
        ("feishu", 200, b'{"code":0,"msg":"success","data":{}}', True),
        ("feishu", 200, b'{"StatusCode":0,"StatusMessage":"success"}', True),  # older answer
        ("feishu", 200, b'{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}', False),
        ("feishu", 200, b'{"code":false}', False),
        ("generic", 204, b"", True),
        ("generic", 202, b"queued", True),
        ("generic", 500, b"oops", False),
        ("generic", 301, b"", False),
    ],
)
def test_accepted_only_when_the_receiver_says_yes(fmt: Any, status: int, answer: bytes, ok: bool) -> None:
    assert accepted(fmt, status, answer) is ok
    assert (failure_reason(fmt, status, answer) is None) is ok


def test_a_refusal_keeps_the_robots_message_for_the_outbox() -> None:
    reason = failure_reason("dingtalk", 200, b'{"errcode":310000,"errmsg":"sign not match"}')
    assert reason == "dingtalk error 310000: sign not match"
    assert failure_reason("generic", 503, b"x" * 5000) == "HTTP 503: " + "x" * 300


# --- configuration ------------------------------------------------------------------------------------


def test_parse_targets_reads_a_json_list_and_blank_means_none() -> None:
    assert parse_targets("  ") == []
    targets = parse_targets(
        json.dumps(
            [
                {"name": "ops", "url": DINGTALK_URL, "format": "dingtalk", "secret": SECRET, "min_severity": "major"},
                {"name": "b3", "url": WECOM_URL, "format": "wecom", "language": "zh", "sites": ["liyuan"]},
            ]
        )
    )
    assert [(t.name, t.format, t.language) for t in targets] == [("ops", "dingtalk", "both"), ("b3", "wecom", "zh")]
    assert targets[0].secret is not None and targets[0].secret.get_secret_value() == SECRET
    assert targets[1].sites == frozenset({"liyuan"})


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ('[{"name": "ops", "url": ', "not valid JSON (line 1"),
        ('{"name": "ops"}', "must be a JSON list"),
        ('[{"name": "ops"}]', "PATROL_WEBHOOKS[0] ('ops'): url: Field required"),
        ('[{"name": "ops", "url": "ftp://x.example/h"}]', "http:// or https://"),
        ('[{"name": "ops", "url": "https://x.example", "format": "slack"}]', "format: Input should be"),
        ('[{"name": "ops", "url": "https://x.example", "format": "wecom", "secret": "k"}]', "remove secret"),
        ('[{"name": "ops", "url": "https://x.example/?access_token=a&sign=b"}]', "remove timestamp and sign"),
        ('[{"name": "ops", "url": "https://x.example", "secret": " "}]', "secret is empty"),
        ('[{"name": "ops", "url": "https://x.example", "sites": []}]', "sites is empty"),
        ('[{"name": "ops", "url": "https://x.example", "timezone": "Mars/Base"}]', "unknown time zone"),
        ('[{"name": "ops", "url": "https://x.example", "token": "t"}]', "token: Extra inputs are not permitted"),
        ('[{"name": "o p s", "url": "https://x.example"}]', "name: String should match pattern"),
        ('[{"name": "a", "url": "https://x.example"}, {"name": "a", "url": "https://y.x"}]', "PATROL_WEBHOOKS[1]"),
        ('[{"name": "ops", "url": "https://x.example", "language": "fr"}]', "language: Input should be"),
    ],
)
def test_bad_settings_say_which_target_and_what_to_change(setting: str, expected: str) -> None:
    with pytest.raises(WebhookConfigError) as caught:
        parse_targets(setting)
    assert expected in str(caught.value)


def test_secrets_and_robot_keys_never_show_in_errors_reprs_or_logs() -> None:
    with pytest.raises(WebhookConfigError) as caught:
        parse_targets(json.dumps([{"name": "ops", "url": DINGTALK_URL, "secret": SECRET, "format": "slack"}]))
    assert SECRET not in str(caught.value) and "4f7a0c1e9b8d" not in str(caught.value)
    configured = target("dingtalk", secret=SECRET)
    request = render(configured, [notice()], NOW)
    for shown in (repr(configured), str(configured), configured.safe_url, repr(request), request.safe_url):
        assert SECRET not in shown and "4f7a0c1e9b8d" not in shown
    assert request.safe_url == "https://oapi.dingtalk.com/robot/send?access_token=…&timestamp=…&sign=…"
    assert target("feishu", url=FEISHU_URL).safe_url == "https://open.feishu.cn/open-apis/bot/v2/hook/5e3d…"


@pytest.mark.parametrize(
    ("settings", "site", "severity", "wanted"),
    [
        ({}, "liyuan", "warning", True),
        ({"sites": ["liyuan"]}, "liyuan", "warning", True),
        ({"sites": ["other"]}, "liyuan", "critical", False),
        ({"min_severity": "major"}, "liyuan", "warning", False),
        ({"min_severity": "major"}, "liyuan", "major", True),
        ({"min_severity": "critical"}, "liyuan", "critical", True),
        ({"min_severity": "critical"}, "liyuan", None, True),  # a closed ticket, a muster: no grade to filter on
    ],
)
def test_a_target_filters_by_site_and_minimum_severity(
    settings: dict[str, Any], site: str, severity: str | None, wanted: bool
) -> None:
    assert target("generic", url="https://x.example", **settings).wants(notice(severity=severity, site=site)) is wanted


def test_a_notice_round_trips_through_the_outbox_and_needs_an_aware_time() -> None:
    stored = json.loads(json.dumps(notice(kind="muster", severity=None).to_dict()))
    assert Notice.from_dict(stored) == notice(kind="muster", severity=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        Notice(kind="test", site="liyuan", title=Name(zh="测试", en="Test"), at=datetime(2026, 11, 28, 8, 5))
    with pytest.raises(ValueError):
        Notice.from_dict({**notice().to_dict(), "kind": "alarm_exploded"})
