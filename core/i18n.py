"""Bilingual (zh-CN, en) texts that reach people: reader messages, verdict reasons."""

from __future__ import annotations

REASON_TEXT: dict[str, tuple[str, str]] = {
    "ok": ("签到成功", "Signed in"),
    "unknown_tag": ("未登记的标签", "Unknown tag"),
    "duplicate": ("重复签到", "Already signed in"),
    "out_of_order": ("巡查顺序错误", "Out of order"),
    "too_fast": ("间隔过短，请按路线巡查", "Too fast: walk the route"),
    "outside_window": ("不在巡查时段内", "Outside the patrol window"),
    "no_active_round": ("当前没有巡查任务", "No active round"),
    "not_on_duty": ("当前不在班，无需巡查", "Not on duty now"),
    "bad_signature": ("标签验证失败", "Tag failed verification"),
    "replayed": ("标签数据被重放", "Tag data replayed"),
    "unknown_device": ("读卡器未登记", "Reader not registered"),
    "bad_json": ("读卡数据格式错误", "Unreadable tap data"),
    "bad_schema": ("读卡数据格式错误", "Unreadable tap data"),
    "too_large": ("数据过大", "Message too large"),
    "wrong_device_kind": ("该设备不是读卡器", "Device is not a reader"),
    "internal_error": ("系统错误，请重试", "System error, tap again"),
    "bad_timestamp": ("设备时间无效，请校准时钟", "Device time invalid: set its clock"),
    "id_conflict": ("消息编号重复，请检查设备", "Message id reused: check the device"),
    "kind_mismatch": ("传感器类型不符", "Sensor kind mismatch"),
}
#: Added to a tap's message when the reader's clock was not believed (docs/mqtt-contract.md).
CLOCK_OFF_TEXT = ("读卡器时钟不准，请校时", "Reader clock is off: set its time")


def reason_message(reason: str | None, clock_off: bool = False) -> dict[str, str]:
    zh, en = REASON_TEXT.get(reason or "ok", (reason or "", reason or ""))
    if clock_off:
        zh, en = f"{zh}；{CLOCK_OFF_TEXT[0]}", f"{en}. {CLOCK_OFF_TEXT[1]}"
    return {"zh": zh, "en": en}
