"""Pure ASGI middleware at the HTTP edge: a request body limit and the security headers.

Pure ASGI (not Starlette's BaseHTTPMiddleware) so that a body is refused while it streams, before
it is held in memory, and so that WebSocket and streaming responses pass through untouched.
"""

from __future__ import annotations

import json
import logging

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.findings import upload_limit

log = logging.getLogger(__name__)

#: Every request body this API takes is a small JSON object (a login is well under 1 KiB)...
MAX_BODY_BYTES = 64 * 1024
#: ...but a finding's photos: its POST may carry core.findings.upload_limit(PATROL_PHOTO_MAX_BYTES) bytes.
UPLOAD_PATHS = frozenset({"/api/v1/findings"})

#: Swagger UI and ReDoc (self-hosted under /docs/assets, see server/api/docs.py) need no inline script
#: but set inline styles and show data: images (ReDoc searches in a blob: worker); the rest is
#: same-origin. No page may frame ours.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[bytes, bytes] = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
    b"cross-origin-opener-policy": b"same-origin",
}
#: Answers carry tokens and who-was-where: no cache may keep them. Static docs assets may be cached.
NO_STORE = b"no-store"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes the limit; FastAPI passes an HTTPException
    raised while it reads the body on unchanged, so the app answers it as a 413."""

    def __init__(self, limit: int) -> None:
        what = "this API takes small JSON objects only" if limit <= MAX_BODY_BYTES else "send fewer or smaller photos"
        super().__init__(413, f"the request body is larger than {limit} bytes: {what} (请求体超过 {limit} 字节)")


class BodyLimitMiddleware:
    """413 for a body over `limit` bytes: at once by its Content-Length, else when the streamed
    body passes the limit (a chunked upload has no Content-Length)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = _upload_limit(scope) or self.limit
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            log.info("refused a %s-byte body for %s %s", declared, scope["method"], scope["path"])
            await _send_413(send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    log.info("refused a streamed body over %s bytes for %s %s", limit, scope["method"], scope["path"])
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:  # an app that does not answer HTTPExceptions itself
            if started:
                raise
            await _send_413(send, limit)


class SecurityHeadersMiddleware:
    """Adds SECURITY_HEADERS to every HTTP response, and `Cache-Control: no-store` unless the
    route set its own Cache-Control (the docs assets do)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS.items() if k not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", NO_STORE))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _upload_limit(scope: Scope) -> int | None:
    """The larger limit of a photo upload (UPLOAD_PATHS), from the app's settings; None elsewhere."""
    if scope.get("method") != "POST" or scope.get("path", "").rstrip("/") not in UPLOAD_PATHS:
        return None
    settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
    return upload_limit(settings.photo_max_bytes) if settings is not None else None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps({"detail": BodyTooLarge(limit).detail}, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
