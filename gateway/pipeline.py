"""The gateway: broker → decode → batch → apply → commit → ack → publish answers and out/ events."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from core.config import Settings
from core.contract import SUBSCRIPTIONS, RejectReason
from core.directory import Directory
from gateway import metrics
from gateway.apply import BatchResult, apply_batch
from gateway.batching import collect
from gateway.decode import decode
from gateway.messages import Accepted, Received, Rejected
from gateway.mqtt_link import MqttLink
from storage.db import session_factory, transaction
from storage.directory import load_directory
from storage.retention import prune_telemetry

log = logging.getLogger(__name__)
DIRECTORY_MAX_AGE_S = 30.0
DIRECTORY_MIN_RELOAD_S = 2.0
PRUNE_EVERY_S = 600.0
BUSY_BATCH = 100


class Gateway:
    def __init__(self, settings: Settings, engine: Engine):
        self._settings = settings
        self._sessions = session_factory(engine)
        self._inbox: queue.Queue[Received] = queue.Queue()
        filters = SUBSCRIPTIONS
        if settings.mqtt_shared_group:
            filters = tuple((f"$share/{settings.mqtt_shared_group}/{f}", q) for f, q in filters)
        self.link = MqttLink(settings, self._inbox.put, filters)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="gateway-worker", daemon=True)
        self._answers: queue.Queue[tuple[list[Received], BatchResult] | None] = queue.Queue(maxsize=8)
        self._answerer = threading.Thread(target=self._answer, name="gateway-answers", daemon=True)
        self._directory = Directory()
        self._directory_at = 0.0  # monotonic time of the last load: also rate-limits reloads on unknown devices
        self._next_prune = 0.0
        self.handled = 0  # device messages (not our own echoes) committed since start

    def start(self) -> None:
        self._reload_directory()
        self._answerer.start()
        self._worker.start()
        self.link.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, finish the batch in hand, then leave the broker."""
        self._stop.set()
        self._worker.join(timeout)
        self._answers.put(None)
        self._answerer.join(timeout)
        self.link.stop()

    def _reload_directory(self) -> None:
        with self._sessions() as session:
            self._directory = load_directory(session)
        self._directory_at = time.monotonic()
        log.info("directory loaded: %d devices, %d tags", len(self._directory.devices), len(self._directory.tags))

    def _run(self) -> None:
        s = self._settings
        last_size = 0
        while not self._stop.is_set():
            wait = s.batch_max_wait_ms / 1000
            # Quiet: close a batch at the first pause, so a lone tap is answered at once. Busy (the
            # last batch was big): fill batches for the whole wait, fewer commits per message.
            gap = wait if last_size >= BUSY_BATCH else s.batch_max_gap_ms / 1000
            batch = collect(self._inbox, s.batch_max_size, wait, max_gap_s=gap)
            last_size = len(batch)
            metrics.QUEUE_DEPTH.set(self._inbox.qsize())
            try:
                if batch:
                    self._handle(batch)
                self._housekeeping()
            except Exception:  # a bug must not end the worker: its batch stays unacked, redelivered
                log.exception("gateway worker failed on a batch of %d messages; going on", len(batch))

    def _housekeeping(self) -> None:
        """Timed chores, due whether or not messages are flowing."""
        now = time.monotonic()
        if now - self._directory_at > DIRECTORY_MAX_AGE_S:
            self._safe_reload()
        elif now >= self._next_prune:
            self._prune()

    def _prune(self) -> None:
        """Age out raw telemetry in bounded steps (10,000 rows, one short transaction each)."""
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        cutoff = datetime.now(UTC) - timedelta(days=self._settings.telemetry_retention_days)
        try:
            with transaction(self._sessions) as session:
                removed = prune_telemetry(session, cutoff)
        except Exception:
            log.exception("could not prune telemetry older than %s", cutoff)
            return
        if removed:
            log.info("pruned %d telemetry messages received before %s", removed, cutoff)
            self._next_prune = time.monotonic() + 1.0  # more may be left: go on in a second

    def _safe_reload(self) -> None:
        try:
            self._reload_directory()
        except Exception:
            log.exception("could not reload the directory; keeping the previous one")
            self._directory_at = time.monotonic()

    def _decode_one(self, raw: Received) -> Accepted | Rejected | None:
        try:
            return decode(raw, self._directory)
        except Exception as exc:  # decode rejects bad input itself; this is for its own bugs
            log.exception("could not decode message on %s", raw.topic)
            return Rejected(raw, RejectReason.INTERNAL_ERROR, f"decoding failed: {type(exc).__name__}")

    def _decode_all(self, batch: list[Received]) -> tuple[list[Accepted], list[Rejected]]:
        decoded = [self._decode_one(m) for m in batch]
        unknown = any(isinstance(d, Rejected) and d.reason is RejectReason.UNKNOWN_DEVICE for d in decoded)
        if unknown and time.monotonic() - self._directory_at > DIRECTORY_MIN_RELOAD_S:
            self._safe_reload()  # a site file may have been loaded since: look again before refusing
            decoded = [self._decode_one(m) for m in batch]
        accepted = [d for d in decoded if isinstance(d, Accepted)]  # None: our own output, just acked
        rejected = [d for d in decoded if isinstance(d, Rejected)]
        return accepted, rejected

    def _handle(self, batch: list[Received]) -> None:
        accepted, rejected = self._decode_all(batch)
        result = self._commit_with_retry(accepted, rejected)
        if result is None:
            return  # stopping with the batch uncommitted: unacked, the broker will redeliver it
        self._answers.put((batch, result))  # committed: the answer thread acks and publishes, in order
        self.handled += len(accepted) + len(result.rejected)
        self._count(batch, accepted, result)

    def _answer(self) -> None:
        """Acks and publications of committed batches, in commit order, on their own thread so
        the next batch's database round trips overlap with this MQTT work."""
        while True:
            item = self._answers.get()
            if item is None:
                return
            batch, result = item
            try:
                for msg in batch:
                    self.link.ack(msg)
                for pub in result.publications:
                    self.link.publish(pub.topic, pub.payload, pub.qos, pub.retain)
            except Exception:  # the effects are committed; never let one bad answer stop the acks
                log.exception("could not answer a committed batch of %d messages", len(batch))

    def _commit_with_retry(self, accepted: list[Accepted], rejected: list[Rejected]) -> BatchResult | None:
        """Commit the batch, retrying with backoff while the database is away; None only when
        stopping (the batch stays unacked and the broker redelivers it to the next gateway)."""
        delay = 0.2
        failures = 0
        while True:
            started = time.perf_counter()
            try:
                with transaction(self._sessions) as session:
                    result = apply_batch(session, accepted, rejected, self._directory)
                metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
                return result
            except OperationalError as exc:
                metrics.BATCH_FAILURES.inc()
                log.warning("database unavailable (%s); retrying %d messages", exc.orig, len(accepted) + len(rejected))
            except Exception:
                metrics.BATCH_FAILURES.inc()
                failures += 1
                log.exception("batch of %d messages failed (%d times)", len(accepted) + len(rejected), failures)
                if failures >= 2:  # not the database being away: a message it cannot take
                    isolated = self._isolate(accepted, rejected)
                    if isolated is not None:
                        return isolated
            if self._stop.is_set():
                return None
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def _isolate(self, accepted: list[Accepted], rejected: list[Rejected]) -> BatchResult | None:
        """Apply messages one by one so one poisonous message cannot hold the rest back; the one
        that still fails is quarantined as internal_error (and answered, if a tap). None when the
        database went away meanwhile: the caller retries the whole batch, idempotently."""
        total = BatchResult()
        items: list[Accepted | Rejected] = [*accepted, *rejected]
        for item in items:
            single_a = [item] if isinstance(item, Accepted) else []
            single_r = [item] if isinstance(item, Rejected) else []
            try:
                with transaction(self._sessions) as session:
                    total.merge(apply_batch(session, single_a, single_r, self._directory))
                continue
            except OperationalError:
                return None
            except Exception as exc:
                log.exception("message failed alone: id=%s topic=%s", item.msg_id, item.raw.topic)
                detail = f"{type(exc).__name__}: {exc}".replace("\x00", "")
                poison = Rejected(item.raw, RejectReason.INTERNAL_ERROR, detail, item.topic, item.msg_id)
            for attempt in (poison, Rejected(item.raw, RejectReason.INTERNAL_ERROR, "could not be stored")):
                try:  # the second attempt keeps nothing from the message but its bytes and topic
                    with transaction(self._sessions) as session:
                        total.merge(apply_batch(session, [], [attempt], self._directory))
                    break
                except OperationalError:
                    return None
                except Exception:
                    log.exception("could not quarantine message %s", item.msg_id)
            else:
                return None
        return total

    @staticmethod
    def _count(batch: list[Received], accepted: list[Accepted], result: BatchResult) -> None:
        metrics.BATCH_SIZE.observe(len(batch))
        for kind, count in Counter(msg.channel for msg in accepted).items():  # one labelled inc per kind
            metrics.MESSAGES.labels(kind=kind).inc(count)
        for rej in result.rejected:
            log.warning(
                "quarantined: reason=%s site=%s device=%s id=%s topic=%s: %s",
                rej.reason.value,
                rej.topic.site if rej.topic else None,
                rej.topic.device if rej.topic else None,
                rej.msg_id,
                rej.raw.topic,
                rej.detail[:300],
            )
            metrics.MESSAGES.labels(kind=rej.topic.channel if rej.topic and rej.topic.inbound else "invalid").inc()
            metrics.REJECTED.labels(reason=rej.reason.value).inc()
        if result.duplicates:
            metrics.DUPLICATES.inc(result.duplicates)
        if result.signins:
            metrics.SIGNINS.labels(ok="true").inc(result.signins - result.signins_refused)
            metrics.SIGNINS.labels(ok="false").inc(result.signins_refused)
