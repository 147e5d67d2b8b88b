"""A local webhook receiver for tests: an HTTP server on 127.0.0.1 in a thread that records every request
and answers as it is told — like a robot that takes the message, one that answers 500, one that answers
200 with an error code (how WeCom, DingTalk and Feishu refuse), or none at all (stopped: connection
refused) and then back on the same port."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

Mode = Literal["ok", "error_500", "errcode"]
#: Answers every format reads as taken: errcode 0 (WeCom, DingTalk), code 0 (Feishu); generic ignores the body.
OK_ANSWER = {"errcode": 0, "errmsg": "ok", "code": 0, "msg": "success"}
#: A refusal with HTTP 200, as the robots send for a bad signature.
ERRCODE_ANSWER = {"errcode": 310000, "errmsg": "sign not match", "code": 19021, "msg": "sign match fail"}


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]  # one value per key (the last)
    headers: dict[str, str]  # names lower-cased
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class HttpReceiver:
    """`url(path)` is where to post; `requests` what came in (also while answering with an error)."""

    def __init__(self) -> None:
        self.mode: Mode = "ok"
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def url(self, path: str = "/hook", query: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    def start(self) -> HttpReceiver:
        """Listen (again on the same port after `stop`, so the targets' urls stay right)."""
        if self._server is not None:
            raise RuntimeError("receiver already running")
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the socket: posts are now refused (the receiver is down)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def taken(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(Received(parts.path, query, headers, raw))
                    mode = receiver.mode
                status, answer = {
                    "ok": (200, OK_ANSWER),
                    "error_500": (500, {"error": "internal"}),
                    "errcode": (200, ERRCODE_ANSWER),
                }[mode]
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
                pass

        return Handler
