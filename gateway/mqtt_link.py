"""The one owner of the broker connection: persistent session, manual acks, reconnects.

The paho callbacks only turn a message into a frozen `Received` and hand it to `sink`; they
never touch the database, so the network thread keeps its keepalives (FIELD-NOTES.md).
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.clock import Clock, SystemClock
from core.config import BrokerAddress, Settings
from gateway.messages import Received
from gateway.subscriptions import Subscriptions

log = logging.getLogger(__name__)

# Reason codes that retrying cannot fix: stop and tell the operator (v5 and 3.1.1 numbering).
_FATAL_CONNECT = {
    "Bad user name or password",
    "Not authorized",
    "Client identifier not valid",
    "Unsupported protocol version",
}


PUBLISH_WINDOW = 10_000


def settled(info: mqtt.MQTTMessageInfo) -> bool:
    """Acknowledged by the broker, or never will be (paho raises for a message it dropped). One
    published while disconnected (rc NO_CONN) waits in paho's queue for the reconnect: paho marks it
    published on its PUBACK, but `is_published` raises for its rc, so its flag is read directly."""
    if info.rc == mqtt.MQTT_ERR_NO_CONN:
        return bool(info._published)
    try:
        return bool(info.is_published())
    except (RuntimeError, ValueError):
        return True


# Unacked messages the broker may have in flight to us: enough for several full batches while one commits.
RECEIVE_MAXIMUM = 10_000


class MqttLink:
    def __init__(
        self,
        settings: Settings,
        sink: Callable[[Received], None],
        filters: tuple[tuple[str, int], ...],
        client_id: str | None = None,
        persistent: bool = True,
        manual_ack: bool = True,
        on_connection: Callable[[bool], None] | None = None,
        clock: Clock | None = None,
        lane: int = 0,
        receive_maximum: int = RECEIVE_MAXIMUM,
        broker: BrokerAddress | None = None,
    ) -> None:
        """`on_connection` hears of every connect and disconnect: the gateway reports its own
        broker connection in a metric; other clients of this class (the live feed) must not.
        `lane` marks what this session delivers (gateway/lanes.py); `broker` overrides the account."""
        self._settings = settings
        self._broker: BrokerAddress = broker or settings.broker
        self._sink = sink
        self._lane = lane
        self._receive_maximum = receive_maximum
        self._persistent = persistent
        self._on_connection = on_connection or (lambda _up: None)
        self._clock: Clock = clock or SystemClock()
        self._v5 = settings.effective_protocol == "5"
        self.fatal_error: str | None = None
        cid = client_id or settings.mqtt_client_id
        if self._v5:
            self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        else:
            self._client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311, clean_session=not persistent
            )
        self.subscriptions = Subscriptions(self._client, filters, self._v5)
        self.subscribed = self.subscriptions.ready
        self._client.manual_ack_set(manual_ack)
        # 0 = no in-flight cap: with a cap paho rescans its queue on every PUBACK (17 % of CPU
        # under load); the worker's own window (publish_window) bounds what is outstanding.
        self._client.max_inflight_messages_set(0)
        self._client.reconnect_delay_set(min_delay=1, max_delay=60)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._generation = 0  # counts connections; paho runs callbacks on one thread, in order
        self.received = 0  # messages this session has delivered (tests and logs tell the lanes apart by it)
        self._pending: deque[mqtt.MQTTMessageInfo] = deque()  # QoS 1 publishes awaiting PUBACK, oldest first
        self._configure_auth()

    def _configure_auth(self) -> None:
        b = self._broker
        if b.username:
            self._client.username_pw_set(b.username, b.password)
        s = self._settings
        if b.tls or s.mqtt_tls_ca:
            self._client.tls_set(
                ca_certs=str(s.mqtt_tls_ca) if s.mqtt_tls_ca else None,
                certfile=str(s.mqtt_tls_cert) if s.mqtt_tls_cert else None,
                keyfile=str(s.mqtt_tls_key) if s.mqtt_tls_key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )

    def start(self) -> None:
        props = None
        kwargs: dict[str, Any] = {}
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._settings.mqtt_session_expiry_s if self._persistent else 0
            props.ReceiveMaximum = self._receive_maximum
            kwargs = {"clean_start": not self._persistent, "properties": props}
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=30, **kwargs)
        self._client.loop_start()
        log.info(
            "connecting to MQTT broker %s:%s as %s",
            self._broker.host,
            self._broker.port,
            self._client._client_id.decode(),
        )

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._on_connection(False)

    def ack(self, msg: Received) -> None:
        """Ack on the connection that delivered the message. A message from an earlier connection
        is not acked: its packet id may now name another message, and the broker redelivers it."""
        if msg.qos > 0 and msg.generation == self._generation:
            self._client.ack(msg.mid, msg.qos)

    def backlog(self) -> int:
        """QoS 1 publications the broker has not acknowledged yet (sent, or still in paho's queue):
        what the answer thread paces refusals by (gateway/answering.py). Called from the thread
        that publishes, like `publish`."""
        pending = self._pending
        while pending and settled(pending[0]):
            pending.popleft()
        return len(pending)

    def newest_publication(self) -> mqtt.MQTTMessageInfo | None:
        """The newest QoS 1 publication the broker has not acknowledged yet (None: all are). Paho sends
        them in order and the broker answers in order, so once it is settled so are all before it.
        Called from the thread that publishes."""
        return self._pending[-1] if self.backlog() else None

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Waits while PUBLISH_WINDOW QoS 1 messages await the broker's PUBACK: back-pressure on
        the caller instead of paho running out of packet ids (65,535) and refusing to publish.
        Only paho's per-message condition is waited on, never a lock its network thread holds."""
        pending = self._pending
        if self.backlog() >= PUBLISH_WINDOW:
            try:
                pending[0].wait_for_publish(timeout=30)
            except (RuntimeError, ValueError) as exc:  # paho raises when it can no longer be sent
                log.warning("oldest outstanding publish will not complete: %s", exc)
            pending.popleft()
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: queued for the reconnect
            if qos > 0:
                pending.append(info)
        else:
            log.error("publish to %s failed: %s", topic, mqtt.error_string(info.rc))

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        try:
            self._connected(client, flags, rc)
        except Exception:  # an exception here would end paho's network thread
            log.exception("could not complete the connection to the broker")

    def _connected(self, client: mqtt.Client, flags: Any, rc: Any) -> None:
        if rc.is_failure:
            log.error("broker %s:%s refused the connection: %s", self._broker.host, self._broker.port, rc)
            if str(rc) in _FATAL_CONNECT:
                self.fatal_error = (
                    f"broker refused the connection ({rc}): check PATROL_MQTT_URL credentials and the broker ACL"
                )
                client.disconnect()  # a deliberate disconnect: paho stops reconnecting
            return
        self._generation += 1
        self._on_connection(True)
        log.info("connected to broker (session present: %s)", flags.session_present)
        self.subscriptions.connected()

    @property
    def connected(self) -> bool:
        return bool(self._client.is_connected())

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reason_codes: Any, _p: Any) -> None:
        refused = self.subscriptions.acknowledged(mid, reason_codes)
        if refused:
            log.error("broker refused %d of the subscriptions (lane %d): check the account's ACL", refused, self._lane)
            return
        filters = [f for f, _ in self.subscriptions.filters]
        shown = ", ".join(filters[:3]) + (f" and {len(filters) - 3} more" if len(filters) > 3 else "")
        log.info("subscribed to %s (lane %d)", shown, self._lane)

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, rc: Any, _p: Any) -> None:
        self._on_connection(False)
        self.subscriptions.disconnected()
        if rc.is_failure:
            log.warning("lost the broker connection (%s); paho reconnects with backoff", rc)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", errors="replace")  # kept and quarantined as unknown_topic
        try:
            self._sink(
                Received(
                    topic=topic,
                    payload=bytes(msg.payload),
                    qos=msg.qos,
                    mid=msg.mid,
                    retain=bool(msg.retain),
                    received_at=self._clock.now(),
                    generation=self._generation,
                    lane=self._lane,
                )
            )
        except Exception:  # never let a handler error kill paho's network thread
            log.exception("could not hand over message mid=%s topic=%s", msg.mid, topic)
