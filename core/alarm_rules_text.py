"""What an alarm says to people, in both languages: severity and type names, and a reading's values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.outbound import Name

ALARM_TYPE_NAMES: dict[str, Name] = {
    "water_leak": Name(zh="浸水", en="Water leak"),
    "gas": Name(zh="燃气泄漏", en="Gas leak"),
    "electric_leak": Name(zh="漏电", en="Electrical leakage"),
    "smoke": Name(zh="烟雾报警", en="Smoke"),
    "elevator": Name(zh="电梯故障", en="Elevator fault"),
    "door_open": Name(zh="门未关闭", en="Door left open"),
    "offline": Name(zh="设备离线", en="Device offline"),
    "low_battery": Name(zh="电量低", en="Low battery"),
}
#: Field -> (zh label, en label, unit). Fields not listed are shown as `name value`.
_FIELDS: dict[str, tuple[str, str, str]] = {
    "wet": ("浸水", "wet", ""),
    "level_mm": ("水位", "level", " mm"),
    "lel_pct": ("可燃气体", "gas", " %LEL"),
    "co_ppm": ("一氧化碳", "CO", " ppm"),
    "state": ("状态", "state", ""),
    "fault_code": ("故障码", "fault code", ""),
    "floor": ("楼层", "floor", ""),
    "door": ("轿门", "car door", ""),
    "occupied": ("轿厢有人", "occupied", ""),
    "trapped": ("困人", "trapped", ""),
    "leak_ma": ("漏电流", "leakage", " mA"),
    "alarm": ("烟感报警", "smoke alarm", ""),
    "obscuration_pct": ("减光率", "obscuration", " %"),
    "open": ("门开", "open", ""),
    "event": ("设备报告", "device reports", ""),
    "code": ("代码", "code", ""),
    "online": ("在线", "online", ""),
    "battery_pct": ("电量", "battery", " %"),
}
_WORDS: dict[Any, tuple[str, str]] = {
    True: ("是", "yes"),
    False: ("否", "no"),
    "fault": ("故障", "fault"),
    "normal": ("正常", "normal"),
    "open": ("开", "open"),
    "closed": ("关", "closed"),
    "alarm": ("报警", "alarm"),
    "clear": ("恢复", "clear"),
}
MAX_SHOWN = 6  # a display line, not a dump: a device sending 50 fields shows the first few


def describe_values(values: Mapping[str, Any]) -> Name:
    """`lel_pct=27.5, co_ppm=3` → zh "可燃气体 27.5 %LEL，一氧化碳 3 ppm", en "gas 27.5 %LEL, CO 3 ppm"."""
    zh: list[str] = []
    en: list[str] = []
    for key, value in list(values.items())[:MAX_SHOWN]:
        if value is None:
            continue
        label_zh, label_en, unit = _FIELDS.get(key, (key, key, ""))
        word = _WORDS.get(value) if isinstance(value, bool | str) else None
        if word is not None:
            shown_zh, shown_en = word
        elif isinstance(value, float):
            shown_zh = shown_en = f"{value:g}{unit}"
        else:
            shown_zh = shown_en = f"{value}{unit}"[:40]
        zh.append(f"{label_zh} {shown_zh}")
        en.append(f"{label_en} {shown_en}")
    return Name(zh="，".join(zh) or "—", en=", ".join(en) or "-")
