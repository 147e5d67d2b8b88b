"""The webhook worker: delivers the outbox (storage.outbox) to each target, on its own daemon thread.

Per target and round: claim a group (a short transaction that leases the rows and commits), render
it with `core.webhook_render.render` at the time of THIS attempt (DingTalk and Feishu signatures carry a
timestamp and expire, so a retry is signed afresh), post it with stdlib urllib (no redirects; the
timeout from PATROL_WEBHOOK_TIMEOUT_S), then mark the rows sent or failed in a second transaction.
No database lock is held during the post, so a slow or dead receiver never holds up ingestion.

Delivery is at-least-once, normally exactly once: a worker killed after the post but before the
mark leaves the rows leased, and they are posted again when the lease runs out (never sooner, so a
second worker does not post them meanwhile). The robots take a repeated message as a new one.

The worker waits with the injected clock (`clock.wait`), so tests drive it with a FakeClock and
`run_once()`. Logs name the target and its redacted url (`safe_url`): robot urls carry their keys.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.deadlines import describe_error
from core.webhook_render import render
from core.webhook_text import Request
from core.webhooks import Notice, WebhookTarget, failure_reason
from storage.db import transaction
from storage.outbox import MAX_ATTEMPTS, OutboxEntry, claim_group, mark_failed, mark_sent, next_due, outbox_summary

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "patrol_webhook_deliveries_total", "Posts to webhook targets, by result (sent, failed)", ["target", "result"]
)
PENDING = Gauge("patrol_webhook_pending", "Notifications waiting in the outbox for a webhook target")

#: Bytes of a receiver's answer read: enough for any robot's {"errcode": …, "errmsg": …}.
MAX_ANSWER_BYTES = 4096
#: Real seconds to pause when a target's group is due but another worker is claiming it right now.
BUSY_PAUSE_S = 0.05
#: Real seconds between retries while the database is unavailable, doubling up to the cap.
DB_RETRY_S, DB_RETRY_CAP_S = 0.5, 10.0

#: Posts one request within a timeout (seconds): (HTTP status, answer body). Raises OSError (URLError,
#: timeouts, refused connections) when no answer came.
Send = Callable[[Request, float], tuple[int, bytes]]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (a failure), not a reason to post the message somewhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(request: Request, timeout_s: float) -> tuple[int, bytes]:
    """The default `Send`: one POST with urllib."""
    req = urllib.request.Request(request.url, data=request.body, headers=request.headers, method=request.method)
    try:
        with _OPENER.open(req, timeout=timeout_s) as answer:
            return int(answer.status), answer.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as e:  # 4xx/5xx (and 3xx): an answer, judged by failure_reason
        with e:
            return e.code, e.read(MAX_ANSWER_BYTES)


class WebhookWorker:
    """Delivers the outbox of `targets`; one group per target per round (module docstring).

    `batch_limit` bounds the notices in one message (the rest go in the next round, straight after);
    `max_idle_s` (clock seconds) caps each wait, since rows enqueued by other processes are seen only
    by looking; `max_attempts` is storage.outbox.MAX_ATTEMPTS unless a test wants fewer.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        targets: Sequence[WebhookTarget],
        group_wait_s: float,
        timeout_s: float,
        send: Send | None = None,
        *,
        batch_limit: int = 50,
        max_idle_s: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if batch_limit < 1 or max_idle_s <= 0 or timeout_s <= 0 or group_wait_s < 0 or max_attempts < 1:
            raise ValueError("batch_limit, max_idle_s, timeout_s and max_attempts must be positive, group_wait_s >= 0")
        self._sessions = sessions
        self._clock = clock
        self._targets = {t.name: t for t in targets}
        self._group_wait_s = group_wait_s
        self._timeout_s = timeout_s
        self._send: Send = send or post
        self._batch_limit = batch_limit
        self._max_idle_s = max_idle_s
        self._max_attempts = max_attempts
        self._lease_s = max(60.0, 4 * timeout_s)  # well past any post's end: a live worker's rows stay its own
        self._full = False  # a group this round was cut at batch_limit: more is due now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0  # rows delivered since start
        self.failed_posts = 0  # posts that failed (each retried later or, at the end, marked failed)

    def run_once(self) -> int:
        """One round over every target: claim, post, mark. Returns the rows delivered. Database errors
        propagate (a claim not committed changes nothing)."""
        self._full = False
        delivered = sum(self._deliver(target) for target in self._targets.values())
        with self._sessions() as session:
            PENDING.set(outbox_summary(session, self._clock.now())["pending"])
        return delivered

    def _deliver(self, target: WebhookTarget) -> int:
        with transaction(self._sessions) as session:
            group = claim_group(
                session, target.name, self._clock.now(), self._group_wait_s, self._batch_limit, self._lease_s
            )
        if not group:
            return 0
        self._full = self._full or len(group) >= self._batch_limit
        notices, ids = self._readable(target, group)
        if not notices:
            return 0
        try:
            request = render(target, notices, self._clock.now())
        except Exception as exc:  # a bug in rendering: the rows are retried (and in the end kept as failed)
            log.exception("webhook %s: could not render %d notices", target.name, len(notices))
            return self._finish(target, ids, group, describe_error(exc), None)
        try:
            status, answer = self._send(request, self._timeout_s)
            error = failure_reason(target.format, status, answer)
        except Exception as exc:  # refused, timed out, unreachable: the receiver is down, not our bug
            error = describe_error(exc).replace(request.url, request.safe_url)
        return self._finish(target, ids, group, error, request)

    def _readable(self, target: WebhookTarget, group: list[OutboxEntry]) -> tuple[list[Notice], list[int]]:
        """The group's notices; a row whose stored notice cannot be read is failed at once (no retry
        can fix it) and kept for an operator to see."""
        notices: list[Notice] = []
        ids: list[int] = []
        broken: list[int] = []
        for entry in group:
            try:
                notices.append(Notice.from_dict(entry.notice))
                ids.append(entry.id)
            except ValueError:
                broken.append(entry.id)
        if broken:
            log.error("webhook %s: outbox rows %s hold unreadable notices; marked failed", target.name, broken)
            with transaction(self._sessions) as session:
                mark_failed(session, broken, "unreadable notice in the outbox", self._clock.now(), max_attempts=1)
        return notices, ids

    def _finish(
        self, target: WebhookTarget, ids: list[int], group: list[OutboxEntry], error: str | None, req: Request | None
    ) -> int:
        where = req.safe_url if req is not None else target.safe_url
        gave_up: list[int] = []
        with transaction(self._sessions) as session:
            if error is None:
                mark_sent(session, ids, self._clock.now())
            else:
                gave_up = mark_failed(session, ids, error, self._clock.now(), self._max_attempts)
        if error is None:
            DELIVERIES.labels(target.name, "sent").inc()
            self.sent += len(ids)
            log.debug("webhook %s (%s): %d notices delivered", target.name, where, len(ids))
            return len(ids)
        DELIVERIES.labels(target.name, "failed").inc()
        self.failed_posts += 1
        attempt = max(e.attempts for e in group)
        log.warning("webhook %s (%s): %d notices not sent (try %d): %s", target.name, where, len(ids), attempt, error)
        if gave_up:
            log.error("webhook %s: gave up on outbox rows %s after %d attempts", target.name, gave_up, attempt)
        return 0

    def _wait_s(self) -> float:
        """Clock seconds until a target may have a group to send, at most `max_idle_s`."""
        with self._sessions() as session:
            due = next_due(session, self._targets, self._group_wait_s)
        if due is None:
            return self._max_idle_s
        return min(self._max_idle_s, (due - self._clock.now()).total_seconds())

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; never ends on an error."""
        retry_s = DB_RETRY_S
        while not stop.is_set():
            try:
                delivered = self.run_once()
                wait = 0.0 if self._full else self._wait_s()
            except OperationalError as exc:
                log.warning("webhooks: database unavailable (%s); retrying in %.1f s", exc.orig, retry_s)
                if stop.wait(retry_s):
                    return
                retry_s = min(retry_s * 2, DB_RETRY_CAP_S)
                continue
            except Exception:  # a bug: keep the thread, do not spin on it
                log.exception("webhook delivery failed; retrying in %.1f s", DB_RETRY_CAP_S)
                if stop.wait(DB_RETRY_CAP_S):
                    return
                continue
            retry_s = DB_RETRY_S
            if self._full:
                continue
            if wait <= 0 and not delivered:
                if stop.wait(BUSY_PAUSE_S):  # due, but another worker is claiming it: real time, not clock
                    return
            elif wait > 0 and self._clock.wait(stop, wait):
                return

    def start(self) -> None:
        """Deliver on a daemon thread until `stop()`; with no targets there is nothing to do."""
        if self._thread is not None:
            raise RuntimeError("webhook worker already started")
        if not self._targets:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="webhook-worker", daemon=True)
        self._thread.start()
        log.info("webhook worker started for %s", ", ".join(f"{t.name} ({t.safe_url})" for t in self._targets.values()))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the post in hand (at most timeout_s away); its rows are marked before it ends."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
