"""Settings for every `patrol` process, read once from `PATROL_*` environment variables.

Defaults run on one machine with nothing installed: a SQLite file under ./var/, an MQTT broker
embedded in the process on 127.0.0.1:1884 (never clashing with a system broker on 1883) and the
API on 127.0.0.1:8000. Naming a database or broker by URL switches to it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_BROKER_HOST = "127.0.0.1"
EMBEDDED_BROKER_PORT = 1884


class BrokerAddress(BaseModel, frozen=True):
    """Where and how to reach an MQTT broker, parsed from `mqtt://user:pass@host:port`."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(
                f"PATROL_MQTT_URL scheme {parts.scheme!r} is not supported: use mqtt://host:port "
                "or mqtts://host:port for TLS"
            )
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATROL_", env_file=".env", extra="ignore")

    env: Literal["dev", "prod"] = "dev"
    var_dir: Path = Path("var")
    database_url: str = ""
    mqtt_url: str = ""
    embedded_broker_port: int = EMBEDDED_BROKER_PORT
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_tls_ca: Path | None = None
    mqtt_tls_cert: Path | None = None
    mqtt_tls_key: Path | None = None
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    mqtt_client_id: str = "patrol-gateway"
    mqtt_shared_group: str | None = Field(
        default=None,
        pattern=r"^[^/+#]{1,64}$",
        description="Join an MQTT 5 shared subscription group so several gateways split the load",
    )
    mqtt_session_expiry_s: int = 7 * 24 * 3600
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    gateway_metrics_port: int | None = None
    gateway_metrics_host: str = "127.0.0.1"
    batch_max_size: int = Field(default=2000, ge=1, le=5000)
    batch_max_wait_ms: int = Field(default=50, ge=1, le=5000)
    batch_max_gap_ms: int = Field(default=5, ge=1, le=5000, description="close a batch when input pauses this long")
    token_ttl_hours: int = 12
    telemetry_retention_days: int = Field(default=30, ge=1, description="raw readings kept in SQL this long")
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _defaults_and_safety(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.var_dir / 'patrol.db').as_posix()}"
        if self.env == "prod" and self.embedded_broker:
            raise ValueError("PATROL_ENV=prod needs a real broker: set PATROL_MQTT_URL (e.g. mqtt://127.0.0.1:1883)")
        if self.env == "prod" and self.mqtt_password in ("changeme", "change-me", "password", "secret"):
            raise ValueError("PATROL_MQTT_PASSWORD is a placeholder: set a real secret before running in prod")
        return self

    @property
    def embedded_broker(self) -> bool:
        return not self.mqtt_url

    @property
    def broker(self) -> BrokerAddress:
        if self.embedded_broker:
            return BrokerAddress(host=EMBEDDED_BROKER_HOST, port=self.embedded_broker_port)
        address = BrokerAddress.parse(self.mqtt_url)
        updates = {
            k: v for k, v in (("username", self.mqtt_username), ("password", self.mqtt_password)) if v is not None
        }
        return address.model_copy(update=updates) if updates else address

    @property
    def broker_url(self) -> str:
        """The broker to connect to as a URL, the embedded one included (for the simulators)."""
        return self.mqtt_url or f"mqtt://{EMBEDDED_BROKER_HOST}:{self.embedded_broker_port}"

    @property
    def effective_protocol(self) -> Literal["5", "3.1.1"]:
        """The embedded broker (amqtt) speaks MQTT 3.1.1 only."""
        return "3.1.1" if self.embedded_broker else self.mqtt_protocol


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
