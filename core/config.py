"""Settings for every `patrol` process, read once from `PATROL_*` environment variables.

Defaults run on one machine with nothing installed: a SQLite file under ./var/, an MQTT broker
embedded in the process on 127.0.0.1:1884 (never clashing with a system broker on 1883) and the
API on 127.0.0.1:8000. Naming a database or broker by URL switches to it.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.device_clock import DEFAULT_FUTURE, DEFAULT_PAST, ClockWindow
from core.webhooks import WebhookTarget, parse_targets

EMBEDDED_BROKER_HOST = "127.0.0.1"
EMBEDDED_BROKER_PORT = 1884


class BrokerAddress(BaseModel, frozen=True):
    """Where and how to reach an MQTT broker, parsed from `mqtt://user:pass@host:port`."""

    host: str
    port: int
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
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
    # hide_input_in_errors: a configuration error must never print a secret (a password, a URL with one)
    model_config = SettingsConfigDict(env_prefix="PATROL_", env_file=".env", extra="ignore", hide_input_in_errors=True)

    env: Literal["dev", "prod"] = "dev"
    var_dir: Path = Path("var")
    database_url: str = Field(default="", repr=False)  # may carry a password
    mqtt_url: str = Field(default="", repr=False)  # may carry user:password
    embedded_broker_port: int = EMBEDDED_BROKER_PORT
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_live_username: str | None = Field(default=None, description="the API live feed's own broker account")
    mqtt_live_password: SecretStr | None = None
    broker_accounts_dir: Path | None = Field(default=None, description="provisioned broker files; default var/broker")
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
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None
    api_behind_tls_proxy: bool = Field(default=False, description="TLS ends at a reverse proxy in front of the API")
    api_forwarded_allow_ips: str = Field(
        default="127.0.0.1", description="proxies whose X-Forwarded-For names the client (login limits per address)"
    )
    gateway_metrics_port: int | None = None
    gateway_metrics_host: str = "127.0.0.1"
    batch_max_size: int = Field(default=2000, ge=1, le=5000)
    batch_max_wait_ms: int = Field(default=50, ge=1, le=5000)
    batch_max_gap_ms: int = Field(default=5, ge=1, le=5000, description="close a batch when input pauses this long")
    batch_max_per_device: int = Field(
        default=400, ge=1, le=5000, description="messages of one device per batch: a flooding device delays only itself"
    )
    slow_lane: bool = Field(
        default=True, description="queue a flooding device's messages apart, in a second broker session"
    )
    flood_msgs_per_s: int = Field(
        default=20,
        ge=1,
        description="messages in a second from one device past which it goes to the slow lane (no honest device"
        " sends that many but when it replays an offline queue, which the slow lane drains unharmed)",
    )
    flood_hold_s: int = Field(default=60, ge=1, description="how long a device stays in the slow lane after its flood")
    token_ttl_hours: int = 12
    login_hash_workers: int = Field(default=1, ge=1, le=8, description="threads that check passwords")
    login_hash_queue: int = Field(default=16, ge=0, le=1000, description="logins that may wait for them")
    login_hashes_per_second: float = Field(default=5.0, gt=0, le=1000, description="password checks started, at most")
    login_lockout_after_user_failures: int = Field(default=5, ge=1, description="failures that start a lockout")
    login_lockout_after_address_failures: int = Field(default=20, ge=1, description="failures that start a lockout")
    login_refusal_delay_ms: int = Field(
        default=1000, ge=0, le=5000, description="a refused login (401/429) is answered this much later"
    )
    telemetry_retention_days: int = Field(default=30, ge=1, description="raw readings kept in SQL this long")
    ui_dir: Path | None = Field(
        default=None,
        description="the web UI's files (dashboards/web); by default the ones beside the source tree",
    )
    procedures_dir: Path | None = Field(
        default=None,
        description="a directory of the company's own procedure files (one YAML per incident type, all of them),"
        " replacing the shipped ones (docs/procedures.md)",
    )
    influx_url: str | None = Field(
        default=None,
        pattern=r"^(https?://.+)?$",  # empty (as compose passes an unset variable): SQL only
        description="InfluxDB v2 (http://host:8086) that receives sensor readings; unset: they stay in SQL only",
    )
    influx_token: SecretStr | None = Field(default=None, description="an InfluxDB API token with write access")
    influx_org: str = "patrol"
    influx_bucket: str = "telemetry"
    influx_timeout_s: float = Field(
        default=5, gt=0, le=120, description="a batch not written in this time is retried: its messages are not acked"
    )
    clock_past_window_s: int = Field(
        default=int(DEFAULT_PAST.total_seconds()),
        ge=60,
        description="a device ts this far behind receipt time is still used (offline queues); older is clock skew",
    )
    clock_future_window_s: int = Field(
        default=int(DEFAULT_FUTURE.total_seconds()),
        ge=1,
        description="a device ts this far ahead of receipt time is still used; further ahead is clock skew",
    )
    quarantine_retention_days: int = Field(
        default=14, ge=1, description="rejected messages kept this long after they were last seen"
    )
    quarantine_budget_per_hour: int = Field(
        default=100, ge=1, le=100_000, description="new quarantine rows per device an hour; past it only counted"
    )
    refused_answers_per_reader_s: int = Field(
        default=20, ge=1, description="red answers a second to one reader at most (a flood loses the rest)"
    )
    webhooks: str = Field(
        default="",
        repr=False,  # robot URLs carry their keys, and secrets sign
        description='webhook targets as a JSON list, e.g. [{"name": "ops", "url": "https://…", "format": "wecom"}]'
        " (core.webhooks.WebhookTarget: generic, wecom, dingtalk, feishu); empty: no notifications",
    )
    webhook_group_wait_s: float = Field(
        default=10,
        ge=0,
        le=3600,
        description="notices for one target wait this long so a burst goes out as one message (Alertmanager's"
        " group_wait)",
    )
    webhook_timeout_s: float = Field(default=5, gt=0, le=120, description="a post to a webhook gives up after this")
    round_lead_h: int = Field(
        default=24, ge=1, le=24 * 14, description="patrol rounds are generated this many hours before they start"
    )
    media_dir: Path | None = Field(
        default=None, description="where findings' photos are kept on disk; default var_dir/media (docs/findings.md)"
    )
    media_s3_url: str | None = Field(
        default=None,
        pattern=r"^(https?://.+)?$",  # empty (as compose passes an unset variable): photos on disk
        description="an S3-compatible endpoint (https://s3.example.com, MinIO) for findings' photos; unset: disk",
    )
    media_s3_bucket: str | None = Field(
        default=None, validate_default=True, description="the bucket photos go to (it must exist)"
    )
    media_s3_access_key: str | None = Field(default=None, repr=False)
    media_s3_secret_key: SecretStr | None = Field(default=None, repr=False)
    photo_max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="the largest photo a finding may carry"
    )
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _defaults_and_safety(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.var_dir / 'patrol.db').as_posix()}"
        if self.env == "prod" and self.embedded_broker:
            raise ValueError("PATROL_ENV=prod needs a real broker: set PATROL_MQTT_URL (e.g. mqtt://127.0.0.1:1883)")
        if self.env == "prod" and self.broker.password in ("changeme", "change-me", "password", "secret"):
            raise ValueError("PATROL_MQTT_PASSWORD is a placeholder: set a real secret before running in prod")
        if (self.api_tls_cert is None) != (self.api_tls_key is None):
            raise ValueError("set both PATROL_API_TLS_CERT and PATROL_API_TLS_KEY (or neither)")
        if self.env == "prod":
            self._refuse_unsafe_prod()
        return self

    def _refuse_unsafe_prod(self) -> None:
        """PATROL_ENV=prod refuses what is only fit for a demo, naming the variable to set."""
        if self.broker.username is None:
            raise ValueError(
                "PATROL_ENV=prod refuses an anonymous broker: set PATROL_MQTT_USERNAME and PATROL_MQTT_PASSWORD "
                "(or mqtt://user:password@host in PATROL_MQTT_URL)"
            )
        if self.database_url.startswith("sqlite"):
            raise ValueError(
                "PATROL_ENV=prod refuses SQLite: set PATROL_DATABASE_URL=postgresql://user:password@host/patrol"
            )
        loopback = self.api_host in ("127.0.0.1", "::1", "localhost") or self.api_host.startswith("127.")
        if not loopback and self.api_tls_cert is None and not self.api_behind_tls_proxy:
            raise ValueError(
                f"PATROL_ENV=prod refuses a plain-HTTP API on {self.api_host}: set PATROL_API_TLS_CERT and "
                "PATROL_API_TLS_KEY, or PATROL_API_BEHIND_TLS_PROXY=true when a reverse proxy terminates TLS"
            )

    @field_validator("media_s3_bucket")
    @classmethod
    def _bucket_with_s3(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("media_s3_url") and not value:
            raise ValueError("PATROL_MEDIA_S3_URL is set: set PATROL_MEDIA_S3_BUCKET to an existing bucket too")
        return value or None

    @field_validator("webhooks")
    @classmethod
    def _webhooks_parse(cls, value: str) -> str:
        parse_targets(value)  # WebhookConfigError (a ValueError) names the target and what to change
        return value

    @property
    def webhook_targets(self) -> list[WebhookTarget]:
        """The targets of PATROL_WEBHOOKS (validated when the settings were read)."""
        return parse_targets(self.webhooks)

    @property
    def clock_window(self) -> ClockWindow:
        """Around the receipt time, where a device's `ts` is believed (core.device_clock)."""
        return ClockWindow(timedelta(seconds=self.clock_past_window_s), timedelta(seconds=self.clock_future_window_s))

    @property
    def embedded_broker(self) -> bool:
        return not self.mqtt_url

    @property
    def broker(self) -> BrokerAddress:
        if self.embedded_broker:  # provisioned on start (app/broker_accounts.py): credentials apply here too
            address = BrokerAddress(host=EMBEDDED_BROKER_HOST, port=self.embedded_broker_port)
        else:
            address = BrokerAddress.parse(self.mqtt_url)
        updates = {
            k: v
            for k, v in (
                ("username", self.mqtt_username),
                ("password", self.mqtt_password.get_secret_value() if self.mqtt_password else None),
            )
            if v is not None
        }
        return address.model_copy(update=updates) if updates else address

    @property
    def broker_accounts_path(self) -> Path:
        """Where `patrol device provision` writes by default, and the embedded broker reads."""
        return self.broker_accounts_dir or self.var_dir / "broker"

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
