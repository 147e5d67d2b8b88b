"""Acks belong to the connection that delivered the message (no broker needed: nothing connects)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from paho.mqtt.client import MQTTMessageInfo

from core.config import Settings
from gateway.lanes import FIRST, SECOND, LaneLink
from gateway.messages import Received
from gateway.mqtt_link import MqttLink


def test_a_message_from_an_earlier_connection_is_not_acked(monkeypatch: pytest.MonkeyPatch) -> None:
    link = MqttLink(Settings(_env_file=None, mqtt_url="mqtt://127.0.0.1:1"), lambda _m: None, (("t/#", 1),))  # type: ignore[call-arg]
    sent: list[int] = []
    monkeypatch.setattr(link._client, "ack", lambda mid, qos: sent.append(mid))
    link._generation = 2  # reconnected twice since start

    def msg(mid: int, generation: int, qos: int = 1) -> Received:
        return Received("t/x", b"{}", qos, mid, False, datetime.now(UTC), generation)

    link.ack(msg(7, generation=1))  # its packet id may now name another, uncommitted message
    link.ack(msg(8, generation=2))
    link.ack(msg(9, generation=2, qos=0))  # QoS 0 has nothing to ack
    assert sent == [8]


def test_a_shared_group_name_must_be_a_single_topic_level() -> None:
    with pytest.raises(ValueError):
        Settings(_env_file=None, mqtt_shared_group="a/b")  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        Settings(_env_file=None, mqtt_shared_group="g+")  # type: ignore[call-arg]


def test_a_message_is_acked_on_the_session_that_delivered_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 6 item 3: a flooding device's messages come from the slow-lane session; a PUBACK on the main
    session would name another message there (packet ids are per session)."""
    settings = Settings(_env_file=None, mqtt_url="mqtt://127.0.0.1:1")  # type: ignore[call-arg]
    main = MqttLink(settings, lambda _m: None, (("t/#", 1),))
    slow = MqttLink(settings, lambda _m: None, (), client_id="patrol-gateway-slow", lane=SECOND)
    lanes = LaneLink(main, slow, lambda: [])
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(main._client, "ack", lambda mid, qos: sent.append(("main", mid)))
    monkeypatch.setattr(slow._client, "ack", lambda mid, qos: sent.append(("slow", mid)))
    lanes.ack(Received("t/x", b"{}", 1, 5, False, datetime.now(UTC), 0, lane=FIRST))
    lanes.ack(Received("t/x", b"{}", 1, 5, False, datetime.now(UTC), 0, lane=SECOND))
    assert sent == [("main", 5), ("slow", 5)]


def test_a_slow_lane_message_is_acked_only_once_the_broker_has_its_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 6 item 1 across two sessions: its answer went out on the main session, so the PUBACK on the
    slow one waits until the broker has acknowledged that answer (a crash in between: a redelivery)."""
    settings = Settings(_env_file=None, mqtt_url="mqtt://127.0.0.1:1")  # type: ignore[call-arg]
    main = MqttLink(settings, lambda _m: None, (("t/#", 1),))
    slow = MqttLink(settings, lambda _m: None, (), client_id="patrol-gateway-slow", lane=SECOND)
    lanes = LaneLink(main, slow, lambda: [])
    answer = MQTTMessageInfo(1)
    monkeypatch.setattr(main, "newest_publication", lambda: answer)
    sent: list[int] = []
    monkeypatch.setattr(slow._client, "ack", lambda mid, qos: sent.append(mid))
    lanes.ack(Received("t/x", b"{}", 1, 7, False, datetime.now(UTC), 0, lane=SECOND))
    lanes.ack(Received("t/x", b"{}", 1, 8, False, datetime.now(UTC), 0, lane=SECOND))
    assert sent == [] and lanes.holding == 2
    answer._set_as_published()  # the broker's PUBACK for the answer
    lanes._release()
    assert sent == [7, 8] and lanes.holding == 0
