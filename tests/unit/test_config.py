from __future__ import annotations

from pathlib import Path

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
        Settings(env="prod", mqtt_url="mqtt://127.0.0.1:1883", mqtt_password="changeme", _env_file=None)  # type: ignore[call-arg, arg-type]


PROD_OK = {
    "env": "prod",
    "mqtt_url": "mqtt://gateway:Gw-s3cret-pw@127.0.0.1:1",
    "database_url": "postgresql://patrol:Db-s3cret-pw@127.0.0.1:1/patrol",
}


def prod(**overrides: object) -> Settings:
    return Settings(_env_file=None, **{**PROD_OK, **overrides})  # type: ignore[call-arg, arg-type]


def test_a_safe_prod_configuration_is_accepted() -> None:
    s = prod(api_host="0.0.0.0", api_behind_tls_proxy=True)
    assert (s.broker.username, s.broker.password) == ("gateway", "Gw-s3cret-pw")
    assert prod(mqtt_url="mqtt://127.0.0.1:1", mqtt_username="gw", mqtt_password="Gw-s3cret-pw").broker.password


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"mqtt_url": "mqtt://127.0.0.1:1"}, "PATROL_MQTT_USERNAME"),
        ({"database_url": "sqlite:///var/patrol.db"}, "PATROL_DATABASE_URL"),
        ({"database_url": ""}, "PATROL_DATABASE_URL"),
        ({"api_host": "0.0.0.0"}, "PATROL_API_TLS_CERT"),
        ({"api_host": "10.0.0.7"}, "PATROL_API_BEHIND_TLS_PROXY"),
    ],
)
def test_prod_refuses_what_is_unsafe_naming_the_variable_to_set(overrides: dict[str, str], names: str) -> None:
    """Item 11: an anonymous broker, SQLite and a plain-HTTP API off loopback are refused in prod."""
    with pytest.raises(ValueError, match=names):
        prod(**overrides)


def test_tls_for_the_api_needs_both_files() -> None:
    assert prod(api_host="0.0.0.0", api_tls_cert=Path("cert.pem"), api_tls_key=Path("key.pem")).api_tls_key is not None
    with pytest.raises(ValueError, match="PATROL_API_TLS_KEY"):
        Settings(_env_file=None, api_tls_cert=Path("cert.pem"))  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "overrides",
    [
        {"mqtt_url": "mqtt://127.0.0.1:1", "mqtt_password": "Gw-s3cret-pw"},  # refused: no user name
        {"api_host": "0.0.0.0"},  # refused: no TLS
        {"api_port": "not-a-port"},  # a field error
        {"mqtt_password": "changeme"},  # the placeholder itself must not be echoed either
    ],
)
def test_a_configuration_error_never_prints_a_secret(overrides: dict[str, str]) -> None:
    """Item 11: pydantic echoes input values in its errors; the settings hide them."""
    with pytest.raises(ValueError) as exc:
        prod(**overrides)
    text = str(exc.value)
    for secret in ("Gw-s3cret-pw", "Db-s3cret-pw", "changeme"):
        assert secret not in text, text


def test_settings_repr_hides_secrets() -> None:
    s = prod(mqtt_password="Gw-other-pw")
    for text in (repr(s), str(s), repr(s.broker)):
        assert "s3cret" not in text and "Gw-other-pw" not in text, text


def test_cli_configuration_error_prints_no_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app import cli
    from core.config import get_settings

    monkeypatch.setenv("PATROL_ENV", "prod")
    monkeypatch.setenv("PATROL_MQTT_URL", "mqtt://gateway:Gw-s3cret-pw@127.0.0.1:1")
    monkeypatch.setenv("PATROL_DATABASE_URL", "sqlite:///x.db")
    get_settings.cache_clear()
    try:
        assert cli.main(["migrate"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "PATROL_DATABASE_URL" in err and "Gw-s3cret-pw" not in err, err


def test_prod_refuses_the_demo(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Item 11: `patrol demo` would create an admin 'demo' and simulated devices."""
    from app import cli
    from core.config import get_settings

    for name, value in PROD_OK.items():
        monkeypatch.setenv(f"PATROL_{name.upper()}", value)
    get_settings.cache_clear()
    try:
        assert cli.main(["demo"]) == 2
    finally:
        get_settings.cache_clear()
    assert "PATROL_ENV=prod" in capsys.readouterr().err
