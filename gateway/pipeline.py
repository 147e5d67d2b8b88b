"""The gateway: broker → decode → batch → handlers → commit → publish answers → ack.

Three threads share the work: the link's network thread only enqueues frozen messages; the worker
decodes, batches and commits; the answer thread publishes each committed batch's answers and
events and then acks it to the broker, in commit order, while the worker commits the next batch.
Answers go out before the ack: a crash between them means a redelivery and the same answer again
(rebuilt from the stored effect), never a tap left unanswered (gateway/answering.py).

A device flooding the gateway delays only itself: its backlog queues at the broker in a session of
its own (the slow lane, gateway/lanes.py, when `FloodWatch` sees it over `flood_msgs_per_s`), the
inbox is served round-robin by device with at most `batch_max_per_device` of one device in a batch
(`FairInbox`), its rejections cost one budget-row update per batch once over budget
(storage/quarantine.py), and the red answers to refused input go out after everything else that is
committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable, Mapping, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from core.broker_access import slow_lane_username
from core.clock import Clock, SystemClock
from core.config import Settings
from core.contract import SUBSCRIPTIONS, RejectReason, is_own_output
from core.directory import Directory
from core.outbound import Outbound
from gateway import metrics
from gateway.answering import Answerer, Committed, RefusalCap
from gateway.batching import FairInbox
from gateway.decode import decode
from gateway.effects import Effects
from gateway.flood_watch import FloodWatch
from gateway.handlers import HANDLERS, Context, Handler, apply_batch
from gateway.incidents import Incidents, incidents_from_settings
from gateway.lanes import SECOND, LaneLink
from gateway.link import Filters, Link, LinkFactory, Sink
from gateway.messages import Accepted, Received, Rejected
from gateway.mqtt_link import MqttLink
from gateway.telemetry_sink import TelemetryUnavailable
from storage.db import session_factory, transaction
from storage.directory import load_directory

log = logging.getLogger(__name__)
DIRECTORY_MAX_AGE_S = 30.0
DIRECTORY_MIN_RELOAD_S = 2.0
BUSY_BATCH = 100
SLOW_LANE_RECEIVE_MAXIMUM = 2_000  # a few full batches of one device: the rest of its flood waits at the broker
# A slow-lane device's messages in one batch at most: the others' taps in that batch wait for them to
# commit (about 0.1 ms each), so its share is kept small; its flood is handled more slowly for it.
SLOW_LANE_BATCH_SHARE = 100


class Gateway:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Clock | None = None,
        link: LinkFactory | None = None,
        handlers: dict[str, Handler] | None = None,
        incidents: Incidents | None = None,
    ) -> None:
        self._settings = settings
        self._clock: Clock = clock or SystemClock()
        self._sessions = session_factory(engine)
        self._handlers = dict(HANDLERS if handlers is None else handlers)
        self.incidents = incidents or incidents_from_settings(settings)
        self._inbox: FairInbox[Received] = FairInbox(source_of, sheddable=lambda m: m.qos == 0)
        self._flood = FloodWatch(settings.flood_msgs_per_s, settings.flood_hold_s, self._clock.monotonic)
        filters = SUBSCRIPTIONS
        if settings.mqtt_shared_group:
            filters = tuple((f"$share/{settings.mqtt_shared_group}/{f}", q) for f, q in filters)
        self.link: Link = (link or self._mqtt_link)(self._receive, filters)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="gateway-worker", daemon=True)
        self._answerer = Answerer(self.link, RefusalCap(settings.refused_answers_per_reader_s, self._clock.monotonic))
        self._directory = Directory()
        self._directory_at = -DIRECTORY_MAX_AGE_S  # clock.monotonic() of the last load (also rate-limits reloads)
        self.handled = 0  # device messages (not our own echoes) committed since start
        self.shed = 0  # QoS 0 messages refused because the inbox was full

    def _receive(self, msg: Received) -> None:
        """On the network threads: queue the message, or count it when the inbox sheds it. A device
        that goes over the flood limit is moved at once, not after the batch in hand: until it is,
        its flood reaches the main session. Retained messages (every device's last status comes at
        each subscription to the wildcard) and the gateway's own output are not a device's traffic."""
        source = source_of(msg)
        traffic = not msg.retain and not is_own_output(msg.topic)
        if traffic and self._flood.seen(source) and isinstance(self.link, LaneLink):
            self.link.nudge()
        if not self._inbox.put(msg, source):
            metrics.SHED.inc()
            self.shed += 1
            if self.shed % 1000 == 1:  # a line now and then, not one per message
                log.warning("inbox full: %d QoS 0 messages shed so far (latest on %s)", self.shed, msg.topic)

    def _mqtt_link(self, sink: Sink, filters: Filters) -> Link:
        def report(up: bool) -> None:
            metrics.BROKER_CONNECTED.set(1 if up else 0)

        s = self._settings
        main = MqttLink(s, sink, filters, on_connection=report, clock=self._clock)
        if not s.slow_lane or s.mqtt_shared_group:  # a shared group spreads a flood over its gateways instead
            return main
        broker = s.broker
        if broker.username:
            broker = broker.model_copy(update={"username": slow_lane_username(broker.username)})
        slow = MqttLink(
            s,
            sink,
            (),
            client_id=f"{s.mqtt_client_id}-slow",
            clock=self._clock,
            lane=SECOND,
            receive_maximum=SLOW_LANE_RECEIVE_MAXIMUM,
            broker=broker,
        )
        return LaneLink(main, slow, self._device_sources, self._flood.flooding)

    def _device_sources(self) -> list[str]:
        """The directory's devices as the inbox names them (`site/device`)."""
        return [f"{site}/{code}" for site, code in self._directory.devices]

    def _slow_lane_caps(self) -> Mapping[Hashable, int]:
        """A smaller share of each batch for the devices in the slow lane (SLOW_LANE_BATCH_SHARE)."""
        if not isinstance(self.link, LaneLink):
            return {}
        share = min(SLOW_LANE_BATCH_SHARE, self._settings.batch_max_per_device)
        return dict.fromkeys(self.link.slowed, share)

    def start(self) -> None:
        self._reload_directory()
        self._answerer.start()
        self._worker.start()
        self.link.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, finish the batch in hand, then leave the broker."""
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join(timeout)
        self._answerer.stop(timeout)
        self.link.stop()

    def pump(self) -> int:
        """Process everything received so far on the caller's thread: decode, commit, answer, ack.
        For component tests, which drive the pipeline without threads and in simulated time."""
        done = 0
        self._reload_if_stale()
        while not self._inbox.empty():
            s = self._settings
            batch = self._inbox.collect(
                s.batch_max_size, 0.0, idle_poll_s=0.0, max_gap_s=0.0, per_source=s.batch_max_per_device
            )
            committed = self._process(batch)
            if committed is not None:
                self._answerer.deliver(committed)
            done += len(batch)
        return done

    def publish_events(self, events: Sequence[Outbound]) -> None:
        """Events decided elsewhere (the deadline sweeper), published in order with the answers."""
        if events:
            self._answerer.put(Committed.of([], Effects(events=list(events))))

    def _reload_directory(self) -> None:
        with self._sessions() as session:
            directory = load_directory(session)
        old, self._directory = self._directory, directory
        changed = directory.devices.keys() != old.devices.keys()
        self._directory_at = self._clock.monotonic()
        if changed and isinstance(self.link, LaneLink):
            self.link.reroute()  # a new device needs its own filter while another one is apart
        level = logging.INFO if changed or directory.tags.keys() != old.tags.keys() else logging.DEBUG
        log.log(level, "directory loaded: %d devices, %d tags", len(directory.devices), len(directory.tags))

    def _reload_if_stale(self) -> None:
        """Pick up site files loaded since, whether or not messages are flowing; every few seconds
        while a device is in the slow lane, when the main session hears only the devices it knows."""
        slowed = isinstance(self.link, LaneLink) and bool(self.link.slowed)
        max_age = DIRECTORY_MIN_RELOAD_S if slowed else DIRECTORY_MAX_AGE_S
        if self._clock.monotonic() - self._directory_at > max_age:
            self._safe_reload()

    def _safe_reload(self) -> None:
        try:
            self._reload_directory()
        except Exception:
            log.exception("could not reload the directory; keeping the previous one")
            self._directory_at = self._clock.monotonic()

    def _run(self) -> None:
        s = self._settings
        last_size = 0
        while not self._stop.is_set():
            wait = s.batch_max_wait_ms / 1000
            # Quiet: close a batch at the first pause, so a lone tap is answered at once. Busy (the
            # last batch was big): fill batches for the whole wait, fewer commits per message.
            gap = wait if last_size >= BUSY_BATCH else s.batch_max_gap_ms / 1000
            batch = self._inbox.collect(
                s.batch_max_size,
                wait,
                max_gap_s=gap,
                monotonic=self._clock.monotonic,
                per_source=s.batch_max_per_device,
                caps=self._slow_lane_caps(),
            )
            last_size = len(batch)
            metrics.QUEUE_DEPTH.set(self._inbox.qsize())
            try:
                if batch:
                    committed = self._process(batch)
                    if committed is not None:  # the answer thread publishes and acks, in commit order
                        self._answerer.put(committed)
                self._reload_if_stale()
            except Exception:  # a bug must not end the worker: its batch stays unacked, redelivered
                log.exception("gateway worker failed on a batch of %d messages; going on", len(batch))

    def _process(self, batch: list[Received]) -> Committed | None:
        accepted, rejected = self._decode_all(batch)
        effects = self._commit_with_retry(accepted, rejected)
        if effects is None:
            return None  # stopping with the batch uncommitted: unacked, the broker will redeliver it
        self.handled += len(accepted) + len(rejected)
        _count(batch, accepted, rejected, effects)
        return Committed.of(batch, effects)

    def _decode_one(self, raw: Received) -> Accepted | Rejected | None:
        try:
            return decode(raw, self._directory)
        except Exception as exc:  # decode rejects bad input itself; this is for its own bugs
            log.exception("could not decode message on %s", raw.topic)
            return Rejected(raw, RejectReason.INTERNAL_ERROR, f"decoding failed: {type(exc).__name__}")

    def _decode_all(self, batch: list[Received]) -> tuple[list[Accepted], list[Rejected]]:
        decoded = [self._decode_one(m) for m in batch]
        unknown = any(isinstance(d, Rejected) and d.reason is RejectReason.UNKNOWN_DEVICE for d in decoded)
        if unknown and self._clock.monotonic() - self._directory_at > DIRECTORY_MIN_RELOAD_S:
            self._safe_reload()  # a site file may have been loaded since: look again before refusing
            decoded = [self._decode_one(m) for m in batch]
        accepted = [d for d in decoded if isinstance(d, Accepted)]  # None: our own output, just acked
        rejected = [d for d in decoded if isinstance(d, Rejected)]
        return accepted, rejected

    def _apply(self, accepted: list[Accepted], rejected: list[Rejected]) -> Effects:
        with transaction(self._sessions) as session:
            ctx = Context(
                self._directory,
                self._clock.now(),
                self._settings.clock_window,
                self._settings.quarantine_budget_per_hour,
                self.incidents,
            )
            return apply_batch(session, accepted, rejected, ctx, self._handlers)

    def _commit_with_retry(self, accepted: list[Accepted], rejected: list[Rejected]) -> Effects | None:
        """Commit the batch, retrying with backoff while the database is away; None only when
        stopping (the batch stays unacked and the broker redelivers it to the next gateway)."""
        delay = 0.2
        failures = 0
        while True:
            started = time.perf_counter()  # a measurement of this machine, not a time rule
            try:
                effects = self._apply(accepted, rejected)
                metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
                return effects
            except (OperationalError, TelemetryUnavailable) as exc:  # a store away: the whole batch waits for it
                metrics.BATCH_FAILURES.inc()
                why = exc.orig if isinstance(exc, OperationalError) else exc
                log.warning("store unavailable (%s); retrying %d messages", why, len(accepted) + len(rejected))
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
            self._stop.wait(delay)  # real time: waiting for the database to come back
            delay = min(delay * 2, 10.0)

    def _isolate(self, accepted: list[Accepted], rejected: list[Rejected]) -> Effects | None:
        """Apply messages one by one so one poisonous message cannot hold the rest back; the one
        that still fails is quarantined as internal_error (and answered, if a tap). None when the
        database went away meanwhile: the caller retries the whole batch, idempotently."""
        total = Effects()
        items: list[Accepted | Rejected] = [*accepted, *rejected]
        for item in items:
            single_a = [item] if isinstance(item, Accepted) else []
            single_r = [item] if isinstance(item, Rejected) else []
            try:
                total.merge(self._apply(single_a, single_r))
                continue
            except (OperationalError, TelemetryUnavailable):
                return None
            except Exception as exc:
                log.exception("message failed alone: id=%s topic=%s", item.msg_id, item.raw.topic)
                detail = f"{type(exc).__name__}: {exc}".replace("\x00", "")
                poison = Rejected(item.raw, RejectReason.INTERNAL_ERROR, detail, item.topic, item.msg_id)
            for attempt in (poison, Rejected(item.raw, RejectReason.INTERNAL_ERROR, "could not be stored")):
                try:  # the second attempt keeps nothing from the message but its bytes and topic
                    total.merge(self._apply([], [attempt]))
                    break
                except OperationalError:
                    return None
                except Exception:
                    log.exception("could not quarantine message %s", item.msg_id)
            else:
                return None
        return total


def source_of(msg: Received) -> str:
    """Whose turn a message waits for in the inbox: its device (`patrol/v1/{site}/{role}/{device}/…`).
    With per-device broker credentials and ACLs, only the device itself may publish there; anything
    else shares one source."""
    parts = msg.topic.split("/", 5)
    if len(parts) >= 5 and parts[0] == "patrol" and parts[1] == "v1":
        return f"{parts[2]}/{parts[4]}"
    return ""


def _count(batch: list[Received], accepted: list[Accepted], rejected: list[Rejected], effects: Effects) -> None:
    """Metrics of a committed batch: every rejection is counted by reason (kept, folded into a
    repeat or over its device's budget alike); only the ones that added a quarantine row are logged."""
    metrics.BATCH_SIZE.observe(len(batch))
    kinds: dict[str, int] = {}
    for msg in accepted:
        kinds[msg.channel] = kinds.get(msg.channel, 0) + 1
    decoded = {id(r) for r in rejected}
    reasons: dict[str, int] = {}
    for rej in [*rejected, *(q for q in effects.quarantined if id(q) not in decoded)]:  # + isolated failures
        kind = rej.topic.channel if rej.topic and rej.topic.inbound else "invalid"
        kinds[kind] = kinds.get(kind, 0) + 1
        reasons[rej.reason.value] = reasons.get(rej.reason.value, 0) + 1
    for kind, count in kinds.items():  # one labelled inc per kind
        metrics.MESSAGES.labels(kind=kind).inc(count)
    for reason, count in reasons.items():
        metrics.REJECTED.labels(reason=reason).inc(count)
    for rej in effects.quarantined:
        log.warning(
            "quarantined: reason=%s site=%s device=%s id=%s topic=%s: %s",
            rej.reason.value,
            rej.topic.site if rej.topic else None,
            rej.topic.device if rej.topic else None,
            rej.msg_id,
            rej.raw.topic,
            rej.detail[:300],
        )
    if effects.duplicates:
        metrics.DUPLICATES.inc(effects.duplicates)
    if effects.signins:
        metrics.SIGNINS.labels(ok="true").inc(effects.signins - effects.signins_refused)
        metrics.SIGNINS.labels(ok="false").inc(effects.signins_refused)
