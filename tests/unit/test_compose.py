"""docker-compose.yml cannot run here (no Docker engine), so check it stays consistent with the config."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _env_names(service: dict[str, object]) -> set[str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict)
    return {k for k in env if k != "<<"}


def test_every_patrol_variable_in_compose_is_a_setting() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    fields = {f"PATROL_{name.upper()}" for name in Settings.model_fields}
    used = set().union(*(_env_names(svc) for svc in compose["services"].values()))
    patrol_vars = {v for v in used if v.startswith("PATROL_")}
    assert patrol_vars and patrol_vars <= fields, patrol_vars - fields


def test_compose_runs_the_cli_commands_that_exist() -> None:
    from app.cli import build_parser

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    subcommands = next(a for a in build_parser()._actions if a.dest == "command")
    commands = set(subcommands.choices or ())
    for name, svc in compose["services"].items():
        if "build" in svc:
            assert svc["command"][0] in commands, name


def test_broker_config_is_tuned_not_to_drop_messages() -> None:
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert "max_queued_messages 1000000" in conf and "persistence true" in conf


def test_shipped_broker_admits_only_accounts_and_bounds_messages() -> None:
    """Issue 6 items 2 and 12: the main listener has no anonymous access, reads the provisioned password and
    ACL files, binds client ids to usernames, and drops payloads over the contract's 16 KiB."""
    from core.contract import MAX_PAYLOAD_BYTES

    lines = [ln.strip() for ln in (ROOT / "deploy/mosquitto/mosquitto.conf").read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    assert "per_listener_settings true" in lines
    main = lines[lines.index("listener 1883 0.0.0.0") : lines.index("listener 1880 127.0.0.1")]
    assert "allow_anonymous false" in main and "use_username_as_clientid true" in main
    assert {"password_file /mosquitto/config/access/passwd", "acl_file /mosquitto/config/access/acl"} <= set(main)
    assert f"message_size_limit {MAX_PAYLOAD_BYTES}" in main
    health = (ROOT / "deploy/mosquitto/health.acl").read_text().split("\n")
    assert [ln for ln in health if ln and not ln.startswith("#")] == ["topic read $SYS/broker/uptime"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["mosquitto"]["volumes"]
    assert "./var/broker:/mosquitto/config/access:ro" in volumes
    assert "-p" in compose["services"]["mosquitto"]["healthcheck"]["test"]
    for name in ("gateway", "api"):
        env = {**compose["services"]["migrate"]["environment"], **compose["services"][name]["environment"]}
        assert env["PATROL_MQTT_USERNAME"] and "_MQTT_PASSWORD" in env["PATROL_MQTT_PASSWORD"], name
