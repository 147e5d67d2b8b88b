"""Prometheus metrics of the ingestion path; served by the API's /metrics in the same process,
or by the gateway's own port (PATROL_GATEWAY_METRICS_PORT) when it runs alone."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("patrol_messages_total", "Messages received from devices, by topic kind", ["kind"])
REJECTED = Counter("patrol_messages_rejected_total", "Messages quarantined, by reason", ["reason"])
DUPLICATES = Counter("patrol_messages_duplicate_total", "Redelivered or re-sent messages given no new effect")
SIGNINS = Counter("patrol_signins_total", "New sign-ins committed, by verdict", ["ok"])
BATCH_SIZE = Histogram(
    "patrol_batch_size", "Messages per committed batch", buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
)
COMMIT_SECONDS = Histogram(
    "patrol_commit_seconds",
    "Time to apply and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_FAILURES = Counter("patrol_batch_failures_total", "Batches whose transaction failed and was retried")
SHED = Counter("patrol_gateway_shed_total", "QoS 0 messages refused because the gateway's inbox was full (a flood)")
ANSWERS_SHED = Counter(
    "patrol_answers_shed_total", "Red answers not sent: over the cap a second to one reader (a flood)"
)
QUEUE_DEPTH = Gauge("patrol_gateway_queue_depth", "Messages received but not yet committed")
BROKER_CONNECTED = Gauge("patrol_gateway_broker_connected", "1 while the gateway is connected to the broker")
LIVE_IGNORED = Counter(
    "patrol_live_events_ignored_total", "Messages under out/ that are not valid out/ events: not forwarded to screens"
)
SLOW_LANE_DEVICES = Gauge(
    "patrol_slow_lane_devices", "Devices flooding the gateway now, whose messages queue apart in its slow-lane session"
)
LANE_MOVES = Counter(
    "patrol_lane_moves_total", "Devices moved between the gateway's sessions, by lane moved to", ["to"]
)
