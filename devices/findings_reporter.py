"""Findings a simulated guard reports (公共区域现场巡视表, P1 §2.6–2.10): a small photo made in code and
`POST /api/v1/findings`, posted from a thread of its own so HTTP never holds up the taps."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import secrets
import struct
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

log = logging.getLogger(__name__)


def tiny_png(rng: random.Random, width: int = 48, height: int = 32) -> bytes:
    """A small valid PNG (8-bit RGB) of a noisy colour field: the stand-in for a finding's photo."""
    base = [rng.randrange(60, 200) for _ in range(3)]
    rows = b"".join(
        b"\x00" + bytes(max(0, min(255, c + rng.randint(-30, 30))) for _ in range(width) for c in base)
        for _ in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@dataclass(frozen=True, slots=True)
class FindingReport:
    """What `POST /api/v1/findings` is sent: a guard found something at a checkpoint (P1 §2.6–2.10)."""

    at: datetime
    site: str
    location: str
    category: str
    note: str
    photo: bytes  # PNG
    guard: str


# --- posting findings to the API ------------------------------------------------------------------


class ApiLogin(NamedTuple):
    base_url: str  # e.g. http://127.0.0.1:8000
    username: str
    password: str


class FindingsReporter:
    """Posts findings to `POST /api/v1/findings` in a thread of its own, so HTTP never holds up the
    taps. Tolerant, as a demo must be: an API without the endpoint (404) is said once and findings are
    then dropped; any other failure is logged and that finding dropped."""

    def __init__(self, login: ApiLogin, timeout_s: float = 10.0) -> None:
        self._login, self._timeout_s = login, timeout_s
        self._queue: queue.Queue[FindingReport | None] = queue.Queue(maxsize=100)
        self._token: str | None = None
        self.disabled = False
        self._thread = threading.Thread(target=self._run, name="findings", daemon=True)
        self._thread.start()

    def submit(self, finding: FindingReport) -> None:
        if not self.disabled:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(finding)

    def close(self, timeout_s: float = 5.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while (finding := self._queue.get()) is not None:
            if self.disabled:
                continue
            try:
                self._post(finding, retry=True)
            except (OSError, ValueError, KeyError) as exc:  # urllib raises OSErrors; a bad answer the others
                log.warning("finding at %s not reported: %s", finding.location, exc)

    def _post(self, f: FindingReport, retry: bool) -> None:
        if self._token is None:
            body = json.dumps({"username": self._login.username, "password": self._login.password}).encode()
            answer = self._request("/api/v1/auth/token", body, "application/json")
            self._token = str(json.loads(answer)["access_token"])
        fields = {"site": f.site, "location": f.location, "category": f.category, "note": f.note}
        body, content_type = multipart(fields, [("photos", f"{f.location}.png", "image/png", f.photo)])
        try:
            self._request("/api/v1/findings", body, content_type, self._token)
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if exc.code == 404 and detail == "Not Found":  # no such route (not: no such location)
                self.disabled = True
                log.warning("the API has no POST /api/v1/findings yet: the simulated guards' findings are not reported")
            elif exc.code == 401 and retry:  # the token expired: log in again, once
                self._token = None
                self._post(f, retry=False)
            else:
                log.warning("finding at %s refused (%s): %s", f.location, exc.code, detail)
            return
        log.info("finding reported: %s at %s by %s", f.category, f.location, f.guard)

    def _request(self, path: str, body: bytes, content_type: str, token: str | None = None) -> bytes:
        headers = {"Content-Type": content_type} | ({"Authorization": f"Bearer {token}"} if token else {})
        req = urllib.request.Request(self._login.base_url.rstrip("/") + path, body, headers, method="POST")
        with urllib.request.urlopen(req, timeout=self._timeout_s) as answer:
            return bytes(answer.read())


def _detail(exc: urllib.error.HTTPError) -> str:
    """FastAPI's `detail` of an error answer (its text when not JSON)."""
    text = exc.read().decode("utf-8", "replace")
    try:
        return str(json.loads(text).get("detail", text))
    except (ValueError, AttributeError):
        return text


def multipart(fields: Mapping[str, str], files: list[tuple[str, str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type: text fields, then (field, filename, type, data) files."""
    boundary = f"patrol-{secrets.token_hex(12)}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    for name, filename, content_type, data in files:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        parts.append(f"{head}Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join([*parts, f"--{boundary}--\r\n".encode()]), f"multipart/form-data; boundary={boundary}"
