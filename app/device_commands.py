"""`patrol device provision` and `patrol simulate`: broker accounts for the field devices, and
simulated devices that log in with them."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from core.config import Settings


def _device_credentials(settings: Settings, path: str | None) -> dict[str, str] | None:
    """Each simulated device's own account: from --credentials, else what the embedded broker was
    provisioned with; None (one shared client) for an external broker named without credentials."""
    from app.broker_accounts import BrokerFiles

    if path:
        from core.mqtt_passwords import parse_credentials

        return parse_credentials(Path(path).read_text())
    if settings.embedded_broker:
        return BrokerFiles(settings.broker_accounts_path).read_credentials() or None
    return None


def start_simulator(settings: Settings, site_file: Path) -> threading.Event:
    from devices.simulator import run_simulator

    stop = threading.Event()
    args = (settings.broker_url, site_file, stop)
    kwargs = {"credentials": _device_credentials(settings, None)}
    threading.Thread(target=run_simulator, args=args, kwargs=kwargs, name="simulator", daemon=True).start()
    return stop


def cmd_device_provision(settings: Settings, args: argparse.Namespace) -> int:
    """Broker accounts for every device in the database and the service accounts (docs/broker-access.md)."""
    from app.broker_accounts import BrokerFiles, provision_from_database
    from core.broker_access import GATEWAY_ACCOUNT, LIVE_ACCOUNT
    from storage.db import open_database

    rotate: list[str] | bool = True if args.rotate == [] else (args.rotate or False)
    files = BrokerFiles(Path(args.out) if args.out else settings.broker_accounts_path)
    engine = open_database(settings.database_url)
    try:
        done = provision_from_database(
            engine, files, args.gateway or [GATEWAY_ACCOUNT], args.live or [LIVE_ACCOUNT], rotate, args.remove
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(done.describe())
    print(
        "\nNext / 下一步:\n"
        "  Mosquitto: password_file and acl_file must point at these files; reload it (kill -HUP, or\n"
        "    docker compose kill -s HUP mosquitto). The embedded broker re-reads them by itself.\n"
        "  Devices: give each device only its own line of the credentials file (username:password).\n"
        "  Gateway: PATROL_MQTT_USERNAME / PATROL_MQTT_PASSWORD of a gateway account (its slow lane,\n"
        "    <gateway>-slow, has the same password: nothing to set);\n"
        "  API: PATROL_MQTT_LIVE_USERNAME / PATROL_MQTT_LIVE_PASSWORD of the live account.\n"
        "  Re-run after adding or removing devices (passwords are kept; --rotate renews them)."
    )
    return 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from devices.simulator import run_simulator

    url = args.broker or settings.broker_url
    credentials = _device_credentials(settings, args.credentials) if args.credentials or not args.broker else None
    stop = threading.Event()
    try:
        sent = run_simulator(
            url,
            Path(args.site_file),
            stop,
            tap_every_s=args.tap_every,
            telemetry_every_s=args.telemetry_every,
            duration_s=args.duration,
            credentials=credentials,
        )
    except KeyboardInterrupt:
        stop.set()
        return 0
    print(f"published {sent} messages")
    return 0
