"""Findings' pure rules (issue 8 item 7, 公共区域现场巡视表): the categories and the procedure, department and
deadline each opens (P1 §2.6, §2.9, §2.10, P0 standards), and the photo checks; plus the disk photo store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.findings import (
    ACCEPTED_TYPES,
    CATEGORIES,
    FINDING_PROCEDURES,
    FORM_OVERHEAD_BYTES,
    MAX_NOTE_CHARS,
    MAX_PHOTOS,
    FindingRefused,
    category,
    check_note,
    check_photo,
    check_photo_count,
    procedure_for,
    sniff_image_type,
    upload_limit,
)
from core.procedures import REQUIRED_PROCEDURES
from storage.media import DiskPhotoStore, PhotoMissing, photo_key
from storage.procedures import load_procedures

SHIPPED = load_procedures()
HAN = range(0x4E00, 0xA000)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(64)
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
HEIF = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1" + bytes(64)


def _has_han(text: str) -> bool:
    return any(ord(ch) in HAN for ch in text)


def test_the_twelve_categories_have_chinese_and_english_labels_and_a_rule() -> None:
    assert list(CATEGORIES) == [
        "facility", "cleanliness", "renovation", "door_open", "lock_damaged", "home_hazard", "dispute",
        "littering", "green_area", "illegal_parking", "fire_lane_blocked", "greening",
    ]  # fmt: skip
    for code, c in CATEGORIES.items():
        assert c.code == code
        assert _has_han(c.name.zh) and c.name.en and not _has_han(c.name.en)
        assert c.source.startswith("P1 §2.")


def test_every_category_has_its_required_procedure_file_acting_department_first() -> None:
    assert set(FINDING_PROCEDURES) <= set(REQUIRED_PROCEDURES)
    for c in CATEGORIES.values():
        proc = SHIPPED[procedure_for(c.code)]
        assert proc.code == f"finding_{c.code}"
        assert proc.source.startswith(c.source), proc.source
        assert proc.departments[0] == c.department
        assert proc.steps[-1].code == "record"  # P0 §5


# (rule, category, departments, deadline field, minutes)
DEADLINES = [
    ("P1 §2.6", "facility", ("engineering",), "notify_engineering_min", 120),
    ("P1 §2.9", "lock_damaged", ("engineering",), "notify_engineering_min", 60),
    ("P1 §2.10", "dispute", ("management",), "ack_min", 15),
    ("P0 standards", "cleanliness", ("environment",), "resolve_min", 24 * 60),
    ("P0 standards", "renovation", ("customer_service",), "resolve_min", 24 * 60),
    ("P0 standards", "door_open", ("security",), "resolve_min", 24 * 60),
    ("P0 standards", "home_hazard", ("customer_service",), "resolve_min", 24 * 60),
    ("P0 standards", "littering", ("environment",), "resolve_min", 24 * 60),
    ("P0 standards", "green_area", ("environment",), "resolve_min", 24 * 60),
    ("P0 standards", "illegal_parking", ("security",), "resolve_min", 24 * 60),
    ("P0 standards", "fire_lane_blocked", ("security",), "resolve_min", 24 * 60),
    ("P0 standards", "greening", ("environment",), "resolve_min", 24 * 60),
]


@pytest.mark.parametrize(
    ("rule", "code", "departments", "field", "minutes"), DEADLINES, ids=[f"{r} {c}" for r, c, *_ in DEADLINES]
)
def test_each_category_goes_to_its_department_within_the_rules_time(
    rule: str, code: str, departments: tuple[str, ...], field: str, minutes: int
) -> None:
    """P1 §2.6 engineering within 2 h; P1 §2.9 a damaged lock within 1 h; P1 §2.10 the manager at once;
    P0 standards: anything else handled or reported within 24 h (every finding's resolve_min)."""
    proc = SHIPPED[procedure_for(code)]
    assert rule in proc.source
    assert proc.departments == departments
    assert getattr(proc.deadlines, field) == minutes
    assert proc.deadlines.resolve_min == 24 * 60
    assert proc.deadlines.ack_min <= minutes


def test_p1_2_10_a_dispute_reaches_the_manager() -> None:
    levels = [lv.level for lv in SHIPPED["finding_dispute"].escalation]
    assert levels[-1] == "manager"


def test_an_unknown_category_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(FindingRefused) as caught:
        category("graffiti")
    assert caught.value.code == "unknown_category" and caught.value.status == 422
    assert "facility" in caught.value.message.en and "facility" in caught.value.message.zh


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (JPEG, "image/jpeg"),
        (PNG, "image/png"),
        (WEBP, "image/webp"),
        (HEIC, "image/heic"),
        (HEIF, "image/heif"),
        (b"GIF89a" + bytes(20), None),
        (b"%PDF-1.7\n" + bytes(20), None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # a RIFF that is not WebP
        (b"\x00\x00\x00\x18ftypavif", None),  # AVIF is not taken
        (b"\xff\xd8", None),  # too short to be a JPEG
        (b"", None),
    ],
)
def test_the_type_is_read_from_the_magic_bytes(data: bytes, expected: str | None) -> None:
    assert sniff_image_type(data) == expected
    assert expected is None or expected in ACCEPTED_TYPES


def test_a_photo_passes_with_its_type_size_and_sha256() -> None:
    photo = check_photo(PNG, 1, 1024)
    assert (photo.type, photo.size, photo.sha256) == ("image/png", len(PNG), hashlib.sha256(PNG).hexdigest())


@pytest.mark.parametrize(
    ("data", "code", "status", "en", "zh"),
    [
        (b"", "photo_empty", 422, "photo 2 is empty: take it again", "第 2 张照片是空文件"),
        (JPEG + bytes(2000), "photo_too_large", 413, "photo 2 is larger than 1 KiB: take it at a lower", "压缩后重发"),
        (b"GIF89a" + bytes(20), "photo_type", 415, "photo 2 is not a JPEG, PNG, WebP or HEIC image", "转换格式"),
    ],
    ids=["empty", "too large", "wrong type"],
)
def test_a_refused_photo_says_which_one_and_what_to_do(data: bytes, code: str, status: int, en: str, zh: str) -> None:
    with pytest.raises(FindingRefused) as caught:
        check_photo(data, 2, 1024)
    err = caught.value
    assert (err.code, err.status, err.field, err.photo) == (code, status, "photos", 2)
    assert err.message.en.startswith(en) and zh in err.message.zh


def test_at_most_six_photos() -> None:
    check_photo_count(MAX_PHOTOS)
    with pytest.raises(FindingRefused, match="at most 6 photos per finding, got 7: leave some out"):
        check_photo_count(MAX_PHOTOS + 1)


def test_the_note_is_trimmed_bounded_and_without_nul() -> None:
    assert check_note("  lamp out  ") == "lamp out"
    assert check_note("x" * MAX_NOTE_CHARS) == "x" * MAX_NOTE_CHARS
    with pytest.raises(FindingRefused, match="shorten it"):
        check_note("x" * (MAX_NOTE_CHARS + 1))
    with pytest.raises(FindingRefused, match="NUL"):
        check_note("a\x00b")


def test_the_upload_limit_is_every_photo_at_its_limit_and_the_form() -> None:
    assert upload_limit(8 * 1024 * 1024) == 6 * 8 * 1024 * 1024 + FORM_OVERHEAD_BYTES


# --- the disk store ------------------------------------------------------------------------------


def test_disk_store_keeps_photos_content_addressed_and_gives_them_back(tmp_path: Path) -> None:
    store = DiskPhotoStore(tmp_path / "media")
    key = store.put(JPEG, "image/jpeg")
    assert key == photo_key(hashlib.sha256(JPEG).hexdigest())
    assert store.get(key) == JPEG
    assert store.put(JPEG, "image/jpeg") == key  # the same bytes: one file
    files = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert [p.relative_to(tmp_path / "media").as_posix() for p in files] == [key]


def test_disk_store_refuses_keys_that_are_not_its_own(tmp_path: Path) -> None:
    store = DiskPhotoStore(tmp_path / "media")
    (tmp_path / "secret").write_text("no")
    for key in ("../secret", "photos/../../secret", "photos/ab/" + "0" * 64):
        with pytest.raises(PhotoMissing):
            store.get(key)
