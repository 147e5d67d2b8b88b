"""Where findings' photos are kept: a directory on disk, or an S3-compatible object store (S3, MinIO, …).

Keys are content-addressed, `photos/<first two hex digits>/<sha256>`: the same photo sent twice is kept
once, a key never points at other bytes, and a write may be repeated safely. A photo is written before
the row that names it is committed, so a row never names a missing photo; a transaction that fails
afterwards leaves an unreferenced photo behind (harmless: the same bytes reuse it, nothing lists it).

Which store: `open_photo_store(settings)`: S3 when PATROL_MEDIA_S3_URL is set, else the directory
PATROL_MEDIA_DIR (default var/media). The S3 bucket must exist; this module never creates one.
Errors of either store are mapped here to `PhotoStoreError` (the store failed: the API answers 503) and
`PhotoMissing` (no such key).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from core.config import Settings

log = logging.getLogger(__name__)

_KEY = re.compile(r"^photos/([0-9a-f]{2})/([0-9a-f]{64})$")


class PhotoStoreError(RuntimeError):
    """The store could not keep or give back a photo (disk full, S3 unreachable, refused credentials)."""


class PhotoMissing(LookupError):
    """No photo under this key."""


def photo_key(sha256: str) -> str:
    """The key of the photo whose SHA-256 (hex) is `sha256`."""
    key = f"photos/{sha256[:2]}/{sha256}"
    if not _KEY.match(key):
        raise ValueError(f"not a SHA-256 in hex: {sha256!r}")
    return key


class PhotoStore(Protocol):
    def put(self, data: bytes, content_type: str) -> str:
        """Keep `data`; returns its key (the same bytes: the same key)."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under `key`; PhotoMissing if there are none."""
        ...


class DiskPhotoStore:
    """Photos as files under `root` (created when needed); each written to a temporary file, synced and
    renamed into place, so a reader never sees half a photo."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):  # never a path of the caller's choosing (../)
            raise PhotoMissing(f"not a photo key: {key!r}")
        return self.root / key

    def put(self, data: bytes, content_type: str) -> str:
        key = photo_key(hashlib.sha256(data).hexdigest())
        path = self._path(key)
        try:
            if path.is_file() and path.stat().st_size == len(data):
                return key  # already kept: content-addressed
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.error("could not write photo %s under %s: %s", key, self.root, exc)
            raise PhotoStoreError(f"the photo store {self.root} could not keep the photo: {exc.strerror}") from exc
        return key

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise PhotoMissing(f"no photo {key}") from None
        except OSError as exc:
            log.error("could not read photo %s under %s: %s", key, self.root, exc)
            raise PhotoStoreError(f"the photo store {self.root} could not read the photo: {exc.strerror}") from exc


class S3PhotoStore:
    """Photos as objects of `bucket` on an S3-compatible endpoint (path-style addressing, which MinIO and
    other self-hosted stores need). Bounded timeouts and retries: an unreachable store fails the upload in
    seconds, it does not hold the request."""

    def __init__(
        self, url: str, bucket: str, access_key: str | None, secret_key: str | None, region: str = "us-east-1"
    ) -> None:
        self.bucket = bucket
        self.url = url
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=Config(
                connect_timeout=5,
                read_timeout=15,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )

    def put(self, data: bytes, content_type: str) -> str:
        key = photo_key(hashlib.sha256(data).hexdigest())
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            log.error("could not put photo %s into %s/%s: %s", key, self.url, self.bucket, exc)
            raise PhotoStoreError(self._failure(exc, "could not keep the photo")) from exc
        return key

    def _failure(self, exc: Exception, what: str) -> str:
        """What went wrong, for the caller: S3's error code (NoSuchBucket, AccessDenied, …) or unreachable."""
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "error")
            return f"the S3 photo store {self.url} (bucket {self.bucket!r}) {what}: {code}"
        return f"the S3 photo store {self.url} {what}: it cannot be reached"

    def get(self, key: str) -> bytes:
        if not _KEY.match(key):
            raise PhotoMissing(f"not a photo key: {key!r}")
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise PhotoMissing(f"no photo {key} in bucket {self.bucket!r}") from None
            log.error("could not get photo %s from %s/%s: %s", key, self.url, self.bucket, exc)
            raise PhotoStoreError(self._failure(exc, "could not give the photo back")) from exc
        except BotoCoreError as exc:
            log.error("could not get photo %s from %s/%s: %s", key, self.url, self.bucket, exc)
            raise PhotoStoreError(self._failure(exc, "could not give the photo back")) from exc


def open_photo_store(settings: Settings) -> PhotoStore:
    """The store the settings name: S3 when PATROL_MEDIA_S3_URL is set, else the media directory."""
    if settings.media_s3_url:
        assert settings.media_s3_bucket  # Settings refuse an S3 URL without a bucket
        secret = settings.media_s3_secret_key.get_secret_value() if settings.media_s3_secret_key else None
        return S3PhotoStore(settings.media_s3_url, settings.media_s3_bucket, settings.media_s3_access_key, secret)
    return DiskPhotoStore(settings.media_dir or settings.var_dir / "media")
