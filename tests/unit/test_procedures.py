"""Procedures as data: the shipped files carry the company's steps in its order (P5, P1 §2.9, P0 §5), and a
wrong file is refused with the file, the line and what to change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.findings import FINDING_PROCEDURES
from core.procedures import (
    DEFAULT_ESCALATION,
    ESCALATION_LEVELS,
    MANUAL_PROCEDURES,
    PROCEDURE_FOR_ALARM,
    RECORD_STEP,
    REQUIRED_PROCEDURES,
    Procedure,
    ProcedureIssues,
    procedure_for_alarm,
)
from storage.procedures import SHIPPED_DIR, ProcedureFileError, load_procedures, parse_procedure_text

SHIPPED = load_procedures()


@pytest.mark.parametrize("code", REQUIRED_PROCEDURES)
def test_each_shipped_procedure_loads_in_both_languages(code: str) -> None:
    proc = SHIPPED[code]
    assert proc.code == code
    texts = [proc.name, *(s.text for s in proc.steps), *(s.note for s in proc.steps if s.note)]
    for text in texts:
        assert text.zh.strip() and text.en.strip()
        assert any("\u4e00" <= ch <= "\u9fff" for ch in text.zh), f"{code}: zh text has no Chinese: {text.zh}"
        assert not any("\u4e00" <= ch <= "\u9fff" for ch in text.en), f"{code}: en text has Chinese: {text.en}"


def test_the_shipped_directory_holds_exactly_the_required_procedures() -> None:
    assert sorted(SHIPPED) == sorted(REQUIRED_PROCEDURES)
    assert sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml")) == sorted(REQUIRED_PROCEDURES)


# (procedure, rule, steps in the company's order, safety-critical steps)
ORDER = [
    (
        "water_ingress",
        "P5 §2.4.1",
        ["go_to_site", "close_valve", "cut_wet_power", "call_engineering"],
        {"cut_wet_power"},
    ),
    (
        "elevator_fault",
        "P5 §2.4.2",
        ["check_trapped", "comfort_trapped", "notify_engineering", "keep_order", "never_force_doors"],
        {"never_force_doors"},
    ),
    ("medical_emergency", "P5 §2.4.3", ["help", "first_aid", "critical_report"], set()),
    ("disturbance", "P5 §2.4.4", ["control_and_watch", "call_family", "hand_to_police"], set()),
    (
        "electrical_leakage",
        "P5 §2.4.5(1)",
        ["cut_supply", "cordon_off", "never_touch_victim", "resuscitate", "fire_procedure"],
        {"never_touch_victim"},
    ),
    (
        "gas_leak",
        "P5 §2.4.5(2)",
        ["locate", "close_valve_ventilate", "no_sparks", "evacuate_and_report", "poisoning", "fire_procedure"],
        {"no_sparks"},
    ),
    ("rule_refusal", "P5 §2.4.6", ["stay_calm", "explain", "record_identity", "escalate"], set()),
    ("emergency_muster", "P5 §1", ["notify_all_guards", "hold_posts", "assemble", "report_to_leadership"], set()),
    ("door_open", "P1 §2.9", ["close_door", "check_lock", "notify_engineering", "repair_lock"], set()),
]


@pytest.mark.parametrize(("code", "rule", "steps", "safety"), ORDER, ids=[f"{r} {c}" for c, r, _, _ in ORDER])
def test_steps_follow_the_company_procedure_in_order_then_the_p0_5_record(
    code: str, rule: str, steps: list[str], safety: set[str]
) -> None:
    """Each P5 incident's steps in the order the procedure lists them, ending with the P0 §5 record step."""
    proc = SHIPPED[code]
    assert proc.source.startswith(rule)
    assert [s.code for s in proc.steps] == [*steps, RECORD_STEP]
    assert set(proc.safety_critical_steps) == safety


def test_p5_2_4_2_elevator_never_force_the_car_doors_open_is_safety_critical() -> None:
    step = SHIPPED["elevator_fault"].step("never_force_doors")
    assert step.safety_critical
    assert "撬开电梯轿厢门" in step.text.zh and "force the car doors" in step.text.en


def test_p5_2_4_5_2_gas_no_switches_phones_radios_or_torches_is_safety_critical() -> None:
    step = SHIPPED["gas_leak"].step("no_sparks")
    assert step.safety_critical
    for word in ("电源", "电话", "对讲机", "电筒"):
        assert word in step.text.zh
    for word in ("switches", "phones", "radios", "torches"):
        assert word in step.text.en


def test_p5_2_4_5_2_gas_evacuate_before_reporting_to_the_gas_company() -> None:
    text = SHIPPED["gas_leak"].step("evacuate_and_report").text
    assert text.zh.index("撤离") < text.zh.index("燃气公司")
    assert text.en.index("withdraw") < text.en.index("gas company")


@pytest.mark.parametrize("code", REQUIRED_PROCEDURES)
def test_p0_5_every_procedure_ends_with_the_record_step(code: str) -> None:
    """P0 §5: record what happened, analyse the cause, propose prevention."""
    last = SHIPPED[code].steps[-1]
    assert last.code == RECORD_STEP
    assert "原因" in last.text.zh and "预防" in last.text.zh
    assert "cause" in last.text.en and "prevent" in last.text.en


@pytest.mark.parametrize("code", [c for c in REQUIRED_PROCEDURES if c not in FINDING_PROCEDURES])
def test_security_acts_first_in_emergencies_engineering_in_maintenance(code: str) -> None:
    """Findings go to whoever acts on them (tests/unit/test_findings.py checks their departments)."""
    proc = SHIPPED[code]
    if proc.kind == "emergency":
        assert proc.departments[0] == "security" and proc.steps[0].department == "security"
    else:
        assert proc.departments == ("engineering",)
        assert {s.department for s in proc.steps} == {"engineering"}


def test_low_battery_and_device_offline_are_maintenance_the_rest_emergencies() -> None:
    kinds = {code: proc.kind for code, proc in SHIPPED.items()}
    maintenance = {"low_battery", "device_offline", "finding_facility", "finding_lock_damaged"}
    assert {c for c, k in kinds.items() if k == "maintenance"} == maintenance


def test_every_alarm_type_has_a_shipped_procedure() -> None:
    assert set(PROCEDURE_FOR_ALARM) == {
        "water_leak", "gas", "electric_leak", "smoke", "elevator", "door_open", "offline", "low_battery"
    }  # fmt: skip
    shipped = set(PROCEDURE_FOR_ALARM.values()) | set(MANUAL_PROCEDURES) | set(FINDING_PROCEDURES)
    assert shipped == set(REQUIRED_PROCEDURES)
    assert procedure_for_alarm("elevator") == "elevator_fault"
    with pytest.raises(KeyError, match="no procedure"):
        procedure_for_alarm("earthquake")


def test_default_deadlines_are_the_company_time_limits() -> None:
    """P8 §4.1(2): recorded within 2 min, engineering notified within 3, on site within 10; P8 §4.2: a public
    facility within 15."""
    medical, elevator = SHIPPED["medical_emergency"], SHIPPED["elevator_fault"]
    d = medical.deadlines
    assert (d.ack_min, d.notify_engineering_min, d.on_site_min, d.public_facility_on_site_min) == (2, 3, 10, 15)
    assert medical.on_site_min == 10 and elevator.on_site_min == 15
    assert SHIPPED["door_open"].step("notify_engineering").deadline_min == 60  # P1 §2.9: within 1 hour
    assert SHIPPED["low_battery"].deadlines.resolve_min == 1440  # P0 standards: within 24 hours
    assert medical.escalation == DEFAULT_ESCALATION
    assert [lvl.level for lvl in DEFAULT_ESCALATION] == list(ESCALATION_LEVELS)


VALID = """\
code: sample
version: 1
name: {zh: 示例, en: Sample}
source: P5 §2.4.1
kind: emergency
departments: [security]
escalation:
  - {level: on_duty, wait_min: 2}
  - {level: supervisor, wait_min: 10, reminders: 1, reminder_every_min: 5}
steps:
  - code: first
    department: security
    text: {zh: 第一步, en: First}
  - code: record
    department: security
    text: {zh: 记录, en: Record}
"""


def test_the_sample_is_valid() -> None:
    proc = parse_procedure_text(VALID, "sample.yaml", expected_code="sample")
    assert [s.code for s in proc.steps] == ["first", "record"]
    assert proc.severity == "major" and not proc.public_facility


# (what is wrong, text replaced, replacement, line of the problem, words in it)
BROKEN = [
    ("bad YAML: an unquoted colon", "source: P5 §2.4.1", "source: see: P5 §2.4.1", 4, "not valid YAML"),
    ("missing name", "name: {zh: 示例, en: Sample}\n", "", 1, "name: Field required"),
    ("missing zh", "{zh: 第一步, en: First}", "{en: First}", 13, "zh: Field required"),
    ("duplicate step code", "  - code: first\n", "  - code: record\n", 14, "already used by step 0"),
    ("unknown level", "level: supervisor", "level: director", 9, "on_duty"),
    ("levels out of order", "level: supervisor", "level: on_duty", 9, "in the order on_duty"),
    ("zero wait", "wait_min: 10", "wait_min: 0", 9, "greater than 0"),
    ("reminders do not fit", "reminders: 1, reminder_every_min: 5", "reminders: 2, reminder_every_min: 5", 9,
     "do not fit"),
    ("too many reminders", "reminders: 1,", "reminders: 9,", 9, "less than or equal to 5"),
    ("reminders without interval", ", reminder_every_min: 5", "", 9, "minutes apart"),
    ("department not listed", "department: security\n    text: {zh: 第一步",
     "department: engineering\n    text: {zh: 第一步", 12, "add it there"),
    ("last step not record", "  - code: record\n", "  - code: last\n", 14, "P0 §5"),
    ("unknown field", "kind: emergency\n", "kind: emergency\nowner: me\n", 6, "Extra inputs"),
    ("duplicate key", "kind: emergency\n", "kind: emergency\nkind: maintenance\n", 6, "given twice"),
    ("wrong version", "version: 1", "version: 2", 2, "version"),
    ("code is not the file name", "code: sample", "code: other", 1, "name the file"),
    ("no steps", VALID[VALID.index("steps:") :], "steps: []\n", 10, "at least one step"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "line", "words"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_broken_file_is_refused_at_the_line_of_the_problem(old: str, new: str, line: int, words: str) -> None:
    assert old in VALID
    with pytest.raises(ProcedureFileError) as err:
        parse_procedure_text(VALID.replace(old, new, 1), "sample.yaml", expected_code="sample")
    assert any(p.line == line and words in str(p) for p in err.value.problems), str(err.value)
    assert f"sample.yaml:{line}: " in str(err.value)


def test_an_empty_file_says_what_to_do() -> None:
    with pytest.raises(ProcedureFileError, match="empty: copy one of"):
        parse_procedure_text("# nothing\n", "x.yaml")


def test_every_rule_a_procedure_breaks_is_listed_with_what_to_change() -> None:
    """The pure model refuses bad data on its own (not only through the loader), naming each field."""
    data = parse_procedure_text(VALID, "sample.yaml").model_dump()
    data["departments"] = ["security", "security"]
    data["steps"][0]["department"] = "engineering"
    data["steps"][1]["code"] = "first"
    with pytest.raises(ValidationError) as err:
        Procedure.model_validate(data)
    issues = err.value.errors()[0]["ctx"]["error"]
    assert isinstance(issues, ProcedureIssues)
    assert [p for p, _ in issues.issues] == [
        ("departments", 1),
        ("steps", 0, "department"),
        ("steps", 1, "code"),
        ("steps", 1, "code"),
    ]


def _company_copy(tmp_path: Path) -> Path:
    own = tmp_path / "procedures"
    shutil.copytree(SHIPPED_DIR, own)
    return own


def test_a_company_directory_replaces_the_shipped_procedures(tmp_path: Path) -> None:
    own = _company_copy(tmp_path)
    path = own / "elevator_fault.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("severity: major", "severity: critical"), "utf-8")
    (own / "theft.yaml").write_text(VALID.replace("code: sample", "code: theft"), "utf-8")
    mine = load_procedures(own)
    assert mine["elevator_fault"].severity == "critical"
    assert SHIPPED["elevator_fault"].severity == "major"
    assert set(mine) == {*REQUIRED_PROCEDURES, "theft"}


def test_a_company_directory_missing_a_required_procedure_is_refused(tmp_path: Path) -> None:
    own = _company_copy(tmp_path)
    (own / "gas_leak.yaml").unlink()
    with pytest.raises(ProcedureFileError, match=r"required procedure 'gas_leak' has no file gas_leak\.yaml"):
        load_procedures(own)


def test_problems_of_every_file_are_listed_together(tmp_path: Path) -> None:
    own = _company_copy(tmp_path)
    for name, old, new in (
        ("gas_leak.yaml", "safety_critical: true", "safety_critical: maybe"),
        ("door_open.yaml", "level: shift_leader", "level: on_duty"),
    ):
        path = own / name
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), "utf-8")
    with pytest.raises(ProcedureFileError) as err:
        load_procedures(own)
    sources = {Path(p.source).name for p in err.value.problems}
    assert sources == {"gas_leak.yaml", "door_open.yaml"}, str(err.value)
    gas_line = next(i for i, t in enumerate((own / "gas_leak.yaml").read_text("utf-8").splitlines(), 1) if "maybe" in t)
    assert f"gas_leak.yaml:{gas_line}: steps.2.safety_critical:" in str(err.value)


def test_a_directory_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProcedureFileError, match="not a directory"):
        load_procedures(tmp_path / "nowhere")
