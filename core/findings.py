"""Findings (公共区域现场巡视表, issue 8 item 7): what a guard reports at a checkpoint, and the rules for it.

Pure: the categories with their labels and the rule each follows, the procedure whose ticket a finding
opens, and the checks on a photo (its type read from its first bytes, never from the name or the
Content-Type the phone sent; its size). Every refusal is a `FindingRefused` with a code and a message in
both languages that says what to do.

Which procedure, department and deadline (DOMAIN.md):
- a facility abnormal or damaged → engineering within 2 h (P1 §2.6);
- a damaged lock of a machine, pipe-well, fan or telecom room → engineering within 1 h (P1 §2.9);
- a dispute, gathering or gambling → the company manager at once (P1 §2.10);
- everything else found on a patrol is handled or reported within 24 h (P0 standards), by the department
  that does that work (P4 §4: environment for cleaning and greening, security for order, customer service
  for the residents' affairs).
Each category has its own procedure file `finding_<category>.yaml`, so a company changes one without
touching the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from core.outbound import Name

#: At most this many photos per finding (the form's `photos` field).
MAX_PHOTOS = 6
#: The photo size limit when the settings name none (PATROL_PHOTO_MAX_BYTES).
DEFAULT_PHOTO_MAX_BYTES = 8 * 1024 * 1024
#: A finding's note, like a ticket's note (core.tickets.MAX_NOTE_CHARS).
MAX_NOTE_CHARS = 1000
#: What a multipart form carries besides the photos: the text fields and each part's headers.
FORM_OVERHEAD_BYTES = 64 * 1024
PROCEDURE_PREFIX = "finding_"


@dataclass(frozen=True, slots=True)
class Category:
    """A kind of finding: its label on the patrol sheet, the rule it follows and who acts."""

    code: str
    name: Name
    source: str  # the rule, e.g. "P1 §2.6"
    department: str  # the site file's department code that acts first (its procedure's first department)

    @property
    def procedure(self) -> str:
        return f"{PROCEDURE_PREFIX}{self.code}"


def _c(code: str, zh: str, en: str, source: str, department: str) -> Category:
    return Category(code, Name(zh=zh, en=en), source, department)


#: In the order of the patrol sheet's rules (P1 §2.6 … §2.17).
CATEGORIES: Mapping[str, Category] = {
    c.code: c
    for c in (
        _c("facility", "公共设施不正常或损坏", "Facility abnormal or damaged", "P1 §2.6", "engineering"),
        _c("cleanliness", "清洁问题", "Cleanliness problem", "P1 §2.7", "environment"),
        _c("renovation", "装修违章", "Renovation violation", "P1 §2.8", "customer_service"),
        _c("door_open", "机房、管井房、风机房、电讯房门未关", "Plant room door open", "P1 §2.9", "security"),
        _c("lock_damaged", "机房门锁损坏", "Plant room lock damaged", "P1 §2.9", "engineering"),
        _c("home_hazard", "住户安全隐患", "Safety hazard at a home", "P1 §2.10", "customer_service"),
        _c("dispute", "纠纷、聚众闹事、赌博", "Dispute, gathering or gambling", "P1 §2.10", "management"),
        _c("littering", "乱扔果皮纸团", "Littering", "P1 §2.15", "environment"),
        _c("green_area", "践踏绿地、折枝", "Green area trampled or branches broken", "P1 §2.15", "environment"),
        _c("illegal_parking", "乱停车、乱摆卖", "Illegal parking or street selling", "P1 §2.15", "security"),
        _c("fire_lane_blocked", "占用消防通道", "Fire lane blocked", "P1 §2.15", "security"),
        _c("greening", "绿化问题", "Greening problem", "P1 §2.17", "environment"),
    )
}
#: The procedure files findings need (core.procedures.REQUIRED_PROCEDURES includes them).
FINDING_PROCEDURES: tuple[str, ...] = tuple(c.procedure for c in CATEGORIES.values())


class FindingRefused(ValueError):
    """A finding (or one of its photos) the rules refuse; `code` for programs, `message` for people.

    `status` is the HTTP answer it stands for: 413 too large, 415 not a photo type we take, 422 the rest.
    `field` names the form field, `photo` the photo's position (1-based) when one photo is at fault.
    """

    def __init__(self, code: str, message: Name, *, status: int = 422, field: str, photo: int | None = None):
        self.code = code
        self.message = message
        self.status = status
        self.field = field
        self.photo = photo
        super().__init__(message.en)


def category(code: str) -> Category:
    """The category of `code`, or FindingRefused naming the known ones."""
    found = CATEGORIES.get(code)
    if found is None:
        known = ", ".join(CATEGORIES)
        raise FindingRefused(
            "unknown_category",
            Name(zh=f"没有类别 {code!r}：可选 {known}", en=f"there is no category {code!r}: use one of {known}"),
            field="category",
        )
    return found


def procedure_for(code: str) -> str:
    """The procedure whose ticket a finding of category `code` opens."""
    return category(code).procedure


def check_note(note: str) -> str:
    """The note, trimmed; refused when too long or holding a NUL (PostgreSQL text cannot hold one)."""
    if "\x00" in note:
        raise FindingRefused(
            "bad_note",
            Name(zh="备注含有空字符（\\x00）：请删除后重发", en="the note contains a NUL character (\\x00): remove it"),
            field="note",
        )
    text = note.strip()
    if len(text) > MAX_NOTE_CHARS:
        raise FindingRefused(
            "note_too_long",
            Name(
                zh=f"备注有 {len(text)} 字，最多 {MAX_NOTE_CHARS} 字：请缩短",
                en=f"the note has {len(text)} characters, at most {MAX_NOTE_CHARS}: shorten it",
            ),
            field="note",
        )
    return text


# --- photos ---------------------------------------------------------------------------------------

#: ISO base media file brands (bytes 8–12, after `ftyp`) of HEIF/HEIC photos (iPhones and many Androids).
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})
ACCEPTED_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp", "image/heic", "image/heif")
_ACCEPTED_TEXT = "JPEG, PNG, WebP or HEIC"
_ACCEPTED_ZH = "JPEG、PNG、WebP、HEIC"


def sniff_image_type(data: bytes) -> str | None:
    """The image type by its magic bytes (JPEG, PNG, WebP, HEIC/HEIF), or None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _HEIC_BRANDS:
            return "image/heic"
        if brand in _HEIF_BRANDS:
            return "image/heif"
    return None


@dataclass(frozen=True, slots=True)
class CheckedPhoto:
    """A photo that passed the checks: its bytes, the type read from them, its size and SHA-256."""

    data: bytes
    type: str
    size: int
    sha256: str


def _size(n: int) -> str:
    """A size for people: MiB from one MiB on, else KiB."""
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n / 1024:g} KiB"


def too_large(position: int, max_bytes: int) -> FindingRefused:
    """The refusal of a photo over `max_bytes` (also used before the whole photo was read)."""
    limit = _size(max_bytes)
    return FindingRefused(
        "photo_too_large",
        Name(
            zh=f"第 {position} 张照片超过 {limit}：请降低分辨率或压缩后重发",
            en=f"photo {position} is larger than {limit}: take it at a lower resolution or compress it, then resend",
        ),
        status=413,
        field="photos",
        photo=position,
    )


def check_photo(data: bytes, position: int, max_bytes: int) -> CheckedPhoto:
    """One photo (`position` counts from 1) checked: not empty, at most `max_bytes`, JPEG/PNG/WebP/HEIC by its
    content. The type stored is the one read from the bytes, whatever the upload claimed."""
    if not data:
        raise FindingRefused(
            "photo_empty",
            Name(zh=f"第 {position} 张照片是空文件：请重新拍照", en=f"photo {position} is empty: take it again"),
            field="photos",
            photo=position,
        )
    if len(data) > max_bytes:
        raise too_large(position, max_bytes)
    kind = sniff_image_type(data)
    if kind is None:
        raise FindingRefused(
            "photo_type",
            Name(
                zh=f"第 {position} 张不是可接受的照片格式（{_ACCEPTED_ZH}）：请用相机拍照或转换格式后重发",
                en=f"photo {position} is not a {_ACCEPTED_TEXT} image: send a photo taken by the camera, "
                "or convert it to one of these",
            ),
            status=415,
            field="photos",
            photo=position,
        )
    return CheckedPhoto(data, kind, len(data), hashlib.sha256(data).hexdigest())


def check_photo_count(count: int) -> None:
    if count > MAX_PHOTOS:
        raise FindingRefused(
            "too_many_photos",
            Name(
                zh=f"一次最多 {MAX_PHOTOS} 张照片，收到 {count} 张：请删去多余的",
                en=f"at most {MAX_PHOTOS} photos per finding, got {count}: leave some out",
            ),
            field="photos",
        )


def upload_limit(photo_max_bytes: int) -> int:
    """The largest request body a finding may have: every photo at its limit, and the form around them."""
    return MAX_PHOTOS * photo_max_bytes + FORM_OVERHEAD_BYTES
