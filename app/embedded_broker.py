"""The embedded MQTT broker (amqtt) for one-machine use: no Mosquitto to install for the demo.

It runs in its own thread and event loop, bound to 127.0.0.1 only. It speaks MQTT 3.1.1 and
tops out near 5 k msg/s (FIELD-NOTES.md): for production use Mosquitto or EMQX (README).

Nobody speaks on it without an account: it reads the password and ACL files that
`patrol device provision` writes (the runtime provisions them under var/broker on start) through
the plugins in `app.embedded_broker_access`. Two gaps of amqtt 0.12 are closed here: it acts on a
CONNECT's client id (deleting or taking over that session) before asking the auth plugins, so a
wrong password with the gateway's client id would still cut the gateway off; and it has no
message size limit, so publishes over the contract's 16 KiB are dropped here, as Mosquitto's
`message_size_limit` does (the QoS 1 PUBACK is still sent; the message goes nowhere).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from core.contract import MAX_PAYLOAD_BYTES

log = logging.getLogger(__name__)


def _broker_class() -> Any:
    """amqtt is imported only when the embedded broker is used (a production gateway never loads it)."""
    from amqtt.broker import Broker
    from amqtt.contexts import Action
    from amqtt.errors import AMQTTError
    from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler

    from app.embedded_broker_access import AccessFiles, check_connect

    read_connect = BrokerProtocolHandler.init_from_connect
    original = BrokerProtocolHandler.__dict__["init_from_connect"]  # the classmethod object, to put back

    class GuardedBroker(Broker):
        access: AccessFiles

        async def _initialize_client_session(self, reader: Any, writer: Any, address: str, port: int) -> Any:
            """Refuse a client before amqtt touches any session under its client id (amqtt 0.12.x)."""
            handler, session = await read_connect(reader, writer, self.plugins_manager)
            if not check_connect(self.access, session):
                handler.attach(session, reader, writer)
                session.parent = 0
                await handler.mqtt_connack_authorize(False)
                await writer.close()
                raise AMQTTError(f"refused {address}:{port}")
            # amqtt's own session handling, on the CONNECT already read: its first await is the read, which
            # `_Replayed` answers and undoes at once, with no suspension in between (one event loop)
            BrokerProtocolHandler.init_from_connect = _Replayed(handler, session, original)
            return await super()._initialize_client_session(reader, writer, address, port)

        async def _publish_retained_messages_for_subscription(self, subscription: Any, session: Any) -> None:
            """Retained messages for one of the session's own subscriptions, each one the session may
            read. amqtt 0.12 calls this on every connect with every filter in the broker (the gateway's
            `patrol/v1/#` too) and checks no read rights: a device would get every device's status."""
            topic_filter, qos = subscription
            mine = any(s.client_id == session.client_id for s, _ in self._subscriptions.get(topic_filter, ()))
            handler = self._get_handler(session)
            if not mine or handler is None:
                return
            for topic, retained in list(self._retained_messages.items()):
                if self._matches(topic, topic_filter) and await self._topic_filtering(
                    session, topic=topic, action=Action.RECEIVE
                ):
                    await handler.mqtt_publish(
                        retained.topic, retained.data, min(qos, retained.qos or qos), retain=True
                    )

        async def _handle_message_delivery(self, client_session: Any, handler: Any, wait_deliver: Any) -> bool:
            message = wait_deliver.result()
            if message is not None and len(message.data or b"") > MAX_PAYLOAD_BYTES:
                log.warning(
                    "dropped a %d-byte publish on %s from %r: over the %d-byte message size limit",
                    len(message.data),
                    message.topic,
                    client_session.username,
                    MAX_PAYLOAD_BYTES,
                )
                return True
            return bool(await super()._handle_message_delivery(client_session, handler, wait_deliver))

    return GuardedBroker


class _Replayed:
    """Stands in for `init_from_connect` for one call: puts the original back and returns what was read."""

    def __init__(self, handler: Any, session: Any, original: Any) -> None:
        self._result = (handler, session)
        self._original = original

    async def __call__(self, *_args: Any, **_kwargs: Any) -> Any:
        from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler

        BrokerProtocolHandler.init_from_connect = self._original
        return self._result


class EmbeddedBroker:
    def __init__(self, host: str, port: int, password_file: Path, acl_file: Path) -> None:
        self.host = host
        self.port = port
        self.password_file = password_file
        self.acl_file = acl_file
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-broker", daemon=True)
        self._broker: Any = None

    def start(self, timeout: float = 15.0) -> None:
        from app.embedded_broker_access import AccessFiles

        files = {"password_file": str(self.password_file), "acl_file": str(self.acl_file)}
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "app.embedded_broker_access.PasswordFileAuth": files,
                "app.embedded_broker_access.AclTopicCheck": files,
            },
        }
        self._thread.start()

        async def _start() -> None:
            self._broker = _broker_class()(config)
            self._broker.access = AccessFiles.shared(self.password_file, self.acl_file)
            await self._broker.start()

        try:
            asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout)
        except Exception as exc:  # amqtt wraps the OSError in its own BrokerError
            raise RuntimeError(
                f"cannot start the embedded MQTT broker on {self.host}:{self.port} ({exc}): "
                "stop what uses that port, or set PATROL_MQTT_URL to a running broker"
            ) from exc
        log.info("embedded MQTT broker listening on %s:%s (accounts from %s)", self.host, self.port, self.password_file)

    def stop(self, timeout: float = 10.0) -> None:
        if self._broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout)
            except Exception:
                log.exception("embedded broker did not shut down cleanly")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
