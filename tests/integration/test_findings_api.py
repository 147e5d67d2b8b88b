"""Findings through the real API on a real database, both kinds (issue 8 item 7, 公共区域现场巡视表): a guard
reports at a checkpoint with photos, the finding opens (or joins) a ticket for the right department with
DOMAIN.md's deadline, the photos come back byte for byte, from disk and from an S3 server (moto's, on
127.0.0.1), and a photo of the wrong type or size is refused with nothing stored."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer
from sqlalchemy import Engine, func, select

from core.clock import FakeClock
from core.config import Settings
from core.findings import CATEGORIES
from server.auth import Role, create_user, issue_token
from storage.db import session_factory, transaction
from storage.findings import FindingReport, photo_of, report_finding
from storage.incident_notes import IncidentEnv, Told
from storage.media import DiskPhotoStore
from storage.models import Finding, Ticket
from storage.procedures import load_procedures
from tests.support.api import PASSWORD, make_client
from tests.support.mosquitto import free_port

pytestmark = pytest.mark.integration

SITE = "liyuan"
T0 = datetime(2025, 11, 28, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Friday: the day shift is on duty
FINDINGS, TICKETS = "/api/v1/findings", "/api/v1/tickets"
PHOTO_MAX = 32 * 1024  # small, so that "too large" costs little; the upload limit follows it
BUCKET = "patrol-photos"


def jpeg(size: int = 2048) -> bytes:
    """JPEG magic bytes and random content: every byte value, so a changed byte would show."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(size - 11)


PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(500)


@dataclass
class Api:
    client: TestClient
    engine: Engine
    clock: FakeClock
    media: Path
    made: int = 0

    def as_(self, role: Role) -> dict[str, str]:
        """A bearer token for a new user of `role` (issued directly: no password check per test)."""
        self.made += 1
        with transaction(session_factory(self.engine)) as s:
            user = create_user(s, f"{role.value}-{self.made}", PASSWORD, role, None, self.clock.now())
            token, _ = issue_token(s, user, self.clock.now(), timedelta(days=1))
        return {"Authorization": f"Bearer {token}"}

    def report(
        self, headers: dict[str, str], category: str, location: str, photos: Sequence[bytes] = (), **form: Any
    ) -> Any:
        files = [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
        data = {"site": SITE, "location": location, "category": category} | form
        return self.client.post(FINDINGS, data=data, files=files or None, headers=headers)

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        r = self.client.get(f"{TICKETS}/{ticket_id}", headers=self.as_(Role.CONTROL_ROOM))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def stored(self) -> tuple[int, int, list[Path]]:
        """Findings and tickets in the database, photo files on disk."""
        with session_factory(self.engine)() as s:
            findings = s.scalar(select(func.count()).select_from(Finding)) or 0
            tickets = s.scalar(select(func.count()).select_from(Ticket)) or 0
        return findings, tickets, sorted(p for p in self.media.rglob("*") if p.is_file())


def _api(engine: Engine, media: Path, **settings: Any) -> Api:
    cfg = Settings(  # type: ignore[call-arg]
        _env_file=None, login_refusal_delay_ms=0, media_dir=media, photo_max_bytes=PHOTO_MAX, **settings
    )
    client = make_client(engine, cfg)
    clock = FakeClock(T0)
    client.app.state.clock = clock  # type: ignore[attr-defined]
    return Api(client, engine, clock, media)


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> Api:
    return _api(engine, tmp_path / "media")


def _due(ticket: dict[str, Any], name: str) -> datetime:
    return datetime.fromisoformat(ticket["deadlines"][name])


# (the rule of the deadline, category, checkpoint, departments, deadline, due after)
ROUTES = [
    ("P1 §2.6", "facility", "B1-F01-LOBBY", ["engineering"], "notify_engineering_by", timedelta(hours=2)),
    ("P1 §2.9", "lock_damaged", "B1-F01-TEL", ["engineering"], "notify_engineering_by", timedelta(hours=1)),
    ("P1 §2.10", "dispute", "GATE-N", ["management"], "ack_by", timedelta(minutes=15)),
    ("P0 standards", "cleanliness", "ROAD-MAIN", ["environment"], "resolve_by", timedelta(hours=24)),
]


@pytest.mark.parametrize(
    ("rule", "category", "location", "departments", "deadline", "within"),
    ROUTES,
    ids=[f"{rule} {category}" for rule, category, *_ in ROUTES],
)
def test_a_finding_with_a_photo_opens_a_ticket_with_the_right_department_and_deadline(
    api: Api, rule: str, category: str, location: str, departments: list[str], deadline: str, within: timedelta
) -> None:
    """P1 §2.6: a damaged facility → engineering within 2 h; P1 §2.9: a damaged lock → engineering within
    1 h; P1 §2.10: a dispute or gathering → the company manager; P0 standards: anything else found on a
    patrol is handled or reported within 24 h."""
    photo = jpeg()
    r = api.report(api.as_(Role.GUARD), category, location, [photo], note="  found on the evening round ")
    assert r.status_code == 201, r.text
    found = r.json()
    assert (found["site"], found["location"], found["category"]) == (SITE, location, category)
    assert found["source"] == CATEGORIES[category].source  # the rule of the patrol sheet's entry
    assert found["note"] == "found on the evening round" and found["attached"] is False
    assert found["category_name"]["zh"] and found["category_name"]["en"]
    assert [(p["number"], p["type"], p["size"]) for p in found["photos"]] == [(1, "image/jpeg", len(photo))]
    assert found["photos"][0]["sha256"] == hashlib.sha256(photo).hexdigest()

    ticket = api.ticket(found["ticket_id"])
    assert ticket["procedure"] == f"finding_{category}" and ticket["departments"] == departments
    assert ticket["location"] == location and ticket["state"] == "open"
    assert _due(ticket, deadline) == T0 + within
    assert _due(ticket, "resolve_by") == T0 + timedelta(hours=24)  # P0 standards, every finding
    [finding] = [e for e in ticket["events"] if e["kind"] == "finding"]
    assert finding["actor"].startswith("guard-")
    assert finding["detail"] == {
        "finding_id": found["id"], "category": category, "photos": 1, "note": "found on the evening round"
    }  # fmt: skip
    escalated = [e for e in ticket["events"] if e["kind"] == "escalated"]
    if departments == ["engineering"]:  # engineering's staff on duty are told at once
        assert escalated[0]["detail"]["level"] == "on_duty"
        assert escalated[0]["detail"]["recipients"] and all(
            c.startswith("E") for c in escalated[0]["detail"]["recipients"]
        )
    if category == "dispute":  # P1 §2.10: 及时报告公司经理
        assert "M001" in escalated[0]["detail"]["recipients"]


def test_the_photo_is_read_back_byte_identical_with_its_type(api: Api) -> None:
    photos = [jpeg(5000), PNG]
    found = api.report(api.as_(Role.GUARD), "facility", "B1-F01-LOBBY", photos).json()
    # the type is read from the bytes: the PNG was sent as image/jpeg
    assert [p["type"] for p in found["photos"]] == ["image/jpeg", "image/png"]
    reader = api.as_(Role.ENGINEER)  # the technician sent to repair it sees the photos
    for sent, meta in zip(photos, found["photos"], strict=True):
        r = api.client.get(meta["url"], headers=reader)
        assert r.status_code == 200
        assert r.content == sent and r.headers["content-type"] == meta["type"]
        assert r.headers["x-content-type-options"] == "nosniff"
    assert api.client.get(f"{FINDINGS}/{found['id']}/photos/3", headers=reader).status_code == 404
    assert api.client.get(f"{FINDINGS}/999999/photos/1", headers=reader).status_code == 404
    assert api.client.get(found["photos"][0]["url"]).status_code == 401
    # content-addressed on disk: one file per photo, named by its SHA-256
    assert sorted(p.name for p in api.stored()[2]) == sorted(hashlib.sha256(p).hexdigest() for p in photos)


@pytest.mark.parametrize(
    ("photo", "status", "message"),
    [
        (b"GIF89a" + bytes(100), 415, "photo 2 is not a JPEG, PNG, WebP or HEIC image"),
        (b"%PDF-1.7\n" + bytes(100), 415, "send a photo taken by the camera"),
        (jpeg(PHOTO_MAX + 1), 413, "photo 2 is larger than 32 KiB: take it at a lower resolution or compress it"),
        (b"", 422, "photo 2 is empty: take it again"),
    ],
    ids=["gif", "pdf", "too large", "empty"],
)
def test_a_wrong_type_or_too_large_photo_is_refused_and_nothing_is_stored(
    api: Api, photo: bytes, status: int, message: str
) -> None:
    before = api.stored()
    r = api.report(api.as_(Role.GUARD), "facility", "B1-F01-LOBBY", [jpeg(), photo])
    assert r.status_code == status, r.text
    assert message in r.text
    assert "第 2 张" in r.text  # and in Chinese
    assert api.stored() == before  # no finding, no ticket, not even the good first photo


def test_uploads_may_pass_the_json_body_limit_on_this_path_only(api: Api) -> None:
    guard = api.as_(Role.GUARD)
    six = [jpeg(PHOTO_MAX - 100) for _ in range(6)]  # ~192 KiB, three times the 64 KiB limit of JSON bodies
    r = api.report(guard, "facility", "B1-F01-LOBBY", six)
    assert r.status_code == 201, r.text
    assert len(r.json()["photos"]) == 6
    seven = api.report(guard, "facility", "B1-F01-LOBBY", [jpeg(100)] * 7)
    assert seven.status_code == 422 and "List should have at most 6 items" in seven.text  # the OpenAPI's maxItems
    huge = api.report(guard, "facility", "B1-F01-LOBBY", [jpeg(PHOTO_MAX * 5)] * 2)  # past 6 × limit + form
    assert huge.status_code == 413 and "send fewer or smaller photos" in huge.text
    big_json = {"site": SITE, "procedure": "disturbance", "note": "x" * 70_000}
    other = api.client.post(TICKETS, json=big_json, headers=api.as_(Role.CONTROL_ROOM))
    assert other.status_code == 413 and "small JSON objects only" in other.text


def test_a_second_finding_of_the_same_place_and_category_joins_the_open_ticket(api: Api) -> None:
    """Two guards reporting one broken light make one repair job; another category opens its own ticket."""
    first = api.report(api.as_(Role.GUARD), "facility", "B1-F01-LOBBY", [jpeg()]).json()
    api.clock.advance(600)
    second = api.report(api.as_(Role.GUARD), "facility", "B1-F01-LOBBY", [jpeg()], note="still broken").json()
    assert second["ticket_id"] == first["ticket_id"] and second["attached"] is True and second["id"] != first["id"]
    joined = [e for e in api.ticket(first["ticket_id"])["events"] if e["kind"] == "finding"]
    assert [(e["detail"]["finding_id"], e["detail"]["note"], e["detail"]["photos"]) for e in joined] == [
        (first["id"], "", 1),
        (second["id"], "still broken", 1),
    ]
    other = api.report(api.as_(Role.GUARD), "cleanliness", "B1-F01-LOBBY").json()
    assert other["ticket_id"] != first["ticket_id"] and other["attached"] is False
    elsewhere = api.report(api.as_(Role.GUARD), "facility", "B1-F01-TEL").json()
    assert elsewhere["ticket_id"] != first["ticket_id"]


def test_a_refused_report_says_what_to_change(api: Api) -> None:
    guard = api.as_(Role.GUARD)
    before = api.stored()
    cases = [
        ({"category": "graffiti"}, 422, "'facility'"),
        ({"note": "x" * 1001}, 422, "note"),
        ({"location": "NOWHERE"}, 404, "no location 'NOWHERE' at liyuan: GET /api/v1/sites/liyuan/checkpoints"),
        ({"site": "elsewhere"}, 404, "no site 'elsewhere': GET /api/v1/sites lists them"),
        ({"round_id": "999999"}, 404, "no patrol round 999999 at liyuan: leave round_id out"),
    ]
    for change, status, message in cases:
        form = {"site": SITE, "location": "B1-F01-LOBBY", "category": "facility"} | change
        r = api.client.post(FINDINGS, data=form, headers=guard)
        assert r.status_code == status, (change, r.text)
        assert message in r.text, (change, r.text)
    assert api.stored() == before


def test_who_may_report_and_read(api: Api) -> None:
    for role in (Role.GUARD, Role.CONTROL_ROOM, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN):
        assert api.report(api.as_(role), "littering", "ROAD-MAIN").status_code == 201, role
    refused = api.report(api.as_(Role.ENGINEER), "littering", "ROAD-MAIN")
    assert refused.status_code == 403 and "allowed: admin, control_room, guard, manager, supervisor" in refused.text
    assert api.client.post(FINDINGS, data={"site": SITE}).status_code == 401
    assert api.client.get(FINDINGS).status_code == 401
    assert api.client.get(FINDINGS, headers=api.as_(Role.ENGINEER)).status_code == 200


def test_the_list_filters_pages_and_one_finding(api: Api) -> None:
    guard = api.as_(Role.GUARD)
    ids = {}
    for minutes, (category, location) in enumerate(
        [("facility", "B1-F01-LOBBY"), ("littering", "ROAD-MAIN"), ("facility", "B1-F01-TEL")]
    ):
        api.clock.advance(60 * minutes)
        ids[(category, location)] = api.report(guard, category, location).json()["id"]
    reader = api.as_(Role.SUPERVISOR)

    def listed(**params: Any) -> list[int]:
        r = api.client.get(FINDINGS, params=params, headers=reader)
        assert r.status_code == 200, r.text
        return [f["id"] for f in r.json()["items"]]

    everything = sorted(ids.values(), reverse=True)
    assert listed() == everything
    assert listed(site=SITE, category="facility") == [ids["facility", "B1-F01-TEL"], ids["facility", "B1-F01-LOBBY"]]
    assert listed(location="ROAD-MAIN") == [ids["littering", "ROAD-MAIN"]]
    assert listed(site="elsewhere") == []
    assert listed(since=(T0 + timedelta(seconds=30)).isoformat()) == everything[:2]
    assert listed(until=(T0 + timedelta(seconds=30)).isoformat()) == everything[2:]
    assert listed(site=SITE, since="2025-11-28", until="2025-11-28") == everything  # a day in Shanghai
    first = api.client.get(FINDINGS, params={"limit": 2}, headers=reader).json()
    assert [f["id"] for f in first["items"]] == everything[:2] and first["next_before_id"] == everything[1]
    assert listed(limit=2, before_id=first["next_before_id"]) == everything[2:]
    assert api.client.get(FINDINGS, params={"category": "graffiti"}, headers=reader).status_code == 422
    assert api.client.get(FINDINGS, params={"since": "yesterday"}, headers=reader).status_code == 422

    one = api.client.get(f"{FINDINGS}/{ids['facility', 'B1-F01-TEL']}", headers=reader)
    assert one.status_code == 200
    assert (one.json()["location"], one.json()["building"], one.json()["photos"]) == ("B1-F01-TEL", "B1", [])
    assert api.client.get(f"{FINDINGS}/999999", headers=reader).status_code == 404
    categories = api.client.get(f"{FINDINGS}/categories", headers=guard).json()
    assert {c["code"]: c["department"] for c in categories}["lock_damaged"] == "engineering"


# --- photos in an S3-compatible store -----------------------------------------------------------


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 and a free port, in a thread, with the bucket photos go to."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _s3(url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        server.stop()


def _s3(url: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )


def test_photos_go_to_the_s3_store_and_come_back_byte_identical(engine: Engine, tmp_path: Path, s3_url: str) -> None:
    api = _api(
        engine,
        tmp_path / "media",
        media_s3_url=s3_url,
        media_s3_bucket=BUCKET,
        media_s3_access_key="test",
        media_s3_secret_key="test",
    )
    photo = jpeg(20_000)
    found = api.report(api.as_(Role.GUARD), "lock_damaged", "B1-F01-TEL", [photo]).json()
    r = api.client.get(found["photos"][0]["url"], headers=api.as_(Role.CONTROL_ROOM))
    assert r.status_code == 200 and r.content == photo and r.headers["content-type"] == "image/jpeg"
    key = f"photos/{found['photos'][0]['sha256'][:2]}/{found['photos'][0]['sha256']}"
    held = _s3(s3_url).get_object(Bucket=BUCKET, Key=key)
    assert held["Body"].read() == photo and held["ContentType"] == "image/jpeg"
    assert api.stored()[2] == []  # nothing on disk


def test_an_unreachable_photo_store_is_503_and_nothing_is_stored(engine: Engine, tmp_path: Path) -> None:
    api = _api(engine, tmp_path / "media", media_s3_url=f"http://127.0.0.1:{free_port()}", media_s3_bucket=BUCKET)
    before = api.stored()
    r = api.report(api.as_(Role.GUARD), "facility", "B1-F01-LOBBY", [jpeg()])
    assert r.status_code == 503 and "cannot be reached" in r.text and "try again later" in r.text
    assert api.stored() == before
    assert api.report(api.as_(Role.GUARD), "facility", "B1-F01-LOBBY").status_code == 201  # no photo: no store


def test_a_finding_recorded_without_the_api_opens_its_ticket(engine: Engine, tmp_path: Path) -> None:
    """storage.findings.report_finding in a transaction of its own (scripts, imports): P1 §2.9."""
    store = DiskPhotoStore(tmp_path / "media")
    env = IncidentEnv(load_procedures())
    photo = jpeg()
    report = FindingReport(SITE, "B1-F01-TEL", "lock_damaged", "lock hangs loose", [photo], "G001")
    with transaction(session_factory(engine)) as session:
        reported = report_finding(session, env, Told(), store, report, T0)
        finding_id, ticket_id, attached = reported.finding.id, reported.ticket.id, reported.attached
    assert not attached
    with session_factory(engine)() as s:
        finding = s.get(Finding, finding_id)
        ticket = s.get(Ticket, ticket_id)
        assert finding is not None and ticket is not None
        assert (finding.ticket_id, ticket.procedure, ticket.departments) == (
            ticket_id,
            "finding_lock_damaged",
            ["engineering"],
        )
        assert photo_of(s, store, finding_id, 1) == (photo, "image/jpeg")
        assert photo_of(s, store, finding_id, 2) is None
