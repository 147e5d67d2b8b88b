from __future__ import annotations

import pytest

from core.config import BrokerAddress, Settings


def test_defaults_run_on_one_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PATROL_DATABASE_URL", "PATROL_MQTT_URL", "PATROL_ENV"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.database_url == "sqlite:///var/patrol.db"
    assert s.embedded_broker and (s.broker.host, s.broker.port) == ("127.0.0.1", 1884)
    assert s.effective_protocol == "3.1.1"
    assert (s.api_host, s.api_port) == ("127.0.0.1", 8000)
    assert s.broker_url == "mqtt://127.0.0.1:1884"
    assert Settings(_env_file=None, mqtt_url="mqtt://127.0.0.1:1883").broker_url == "mqtt://127.0.0.1:1883"  # type: ignore[call-arg]


def test_broker_url_with_credentials_and_tls() -> None:
    b = BrokerAddress.parse("mqtts://gw:p%40ss@127.0.0.1")
    assert (b.host, b.port, b.username, b.password, b.tls) == ("127.0.0.1", 8883, "gw", "p@ss", True)


def test_unknown_scheme_says_what_to_use() -> None:
    with pytest.raises(ValueError, match="mqtt://host:port"):
        BrokerAddress.parse("http://127.0.0.1:1883")


def test_prod_refuses_the_embedded_broker_and_placeholder_secrets() -> None:
    with pytest.raises(ValueError, match="PATROL_MQTT_URL"):
        Settings(env="prod", _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="placeholder"):
        Settings(env="prod", mqtt_url="mqtt://127.0.0.1:1883", mqtt_password="changeme", _env_file=None)  # type: ignore[call-arg]
