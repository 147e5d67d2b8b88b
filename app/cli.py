"""`patrol …`: serve, run the edges separately, load sites, manage users, simulate devices."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from app.device_commands import cmd_device_provision, cmd_simulate, start_simulator
from app.user_commands import cmd_user_add, cmd_user_disable, cmd_user_passwd
from core.config import Settings, get_settings
from server.auth import Role

log = logging.getLogger("patrol")
DEMO_SITE = Path(__file__).parent / "demo" / "liyuan.yaml"
#: who `patrol demo` lets in (one fresh password for all): an admin, and guard G001 for the phone page
DEMO_USERS = (("demo", Role.ADMIN, "Demo admin 演示管理员"), ("G001", Role.GUARD, "张伟 Zhang Wei"))


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("amqtt", "transitions", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _ports_free(settings: Settings, *, broker: bool = True) -> bool:
    """Before anything starts: the API's (and the embedded broker's) port must be free (app/preflight.py)."""
    from app.preflight import PortBusyError, check_ports

    try:
        check_ports(settings, broker=broker)
    except PortBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from app.runtime import Runtime

    if not _ports_free(settings):
        return 2
    if not settings.embedded_broker and settings.mqtt_live_username is None:
        # on Mosquitto the client id is the username: a live feed on the gateway's account would
        # take over the gateway's session (and the taps queued in it) every time either reconnects
        print(
            "error: the API's live feed needs its own broker account beside the gateway's: set "
            "PATROL_MQTT_LIVE_USERNAME and PATROL_MQTT_LIVE_PASSWORD (the patrol-live account of "
            "`patrol device provision`)",
            file=sys.stderr,
        )
        return 2
    rt = Runtime.prepare(settings)
    rt.start_broker()
    rt.start_gateway()
    sim = _start_devices(settings, args) if getattr(args, "simulate", None) else None
    try:
        rt.serve_api()
    finally:
        if sim:
            sim.set()
        rt.shutdown()
    return 0


def _start_devices(settings: Settings, args: argparse.Namespace) -> threading.Event:
    """The simulated devices of `--simulate`; in the demo the walking guards' findings (with a photo)
    go to the API as the demo user (devices/patrol_walker.py)."""
    login = getattr(args, "api_login", None)
    if login is None:
        return start_simulator(settings, args.simulate)
    from app.device_commands import _device_credentials
    from devices.simulator import run_simulator

    stop = threading.Event()
    kwargs = {"credentials": _device_credentials(settings, None), "api_login": login}
    threading.Thread(
        target=run_simulator,
        args=(settings.broker_url, args.simulate, stop),
        kwargs=kwargs,
        name="simulator",
        daemon=True,
    ).start()
    return stop


def cmd_gateway(settings: Settings, _args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from app.runtime import Runtime

    rt = Runtime.prepare(settings)
    if settings.gateway_metrics_port:
        start_http_server(settings.gateway_metrics_port, addr=settings.gateway_metrics_host)
    rt.start_broker()
    gw = rt.start_gateway()
    try:
        rt.wait_for_signal()
    finally:
        rt.shutdown()
    if gw.link.fatal_error:
        print(gw.link.fatal_error, file=sys.stderr)
        return 2
    return 0


def cmd_api(settings: Settings, _args: argparse.Namespace) -> int:
    from app.runtime import Runtime

    if not _ports_free(settings, broker=False):
        return 2
    rt = Runtime.prepare(settings)
    try:
        rt.serve_api()
    finally:
        rt.shutdown()
    return 0


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from storage.db import open_database

    open_database(settings.database_url).dispose()
    return 0


def cmd_site_load(settings: Settings, args: argparse.Namespace) -> int:
    from storage.db import open_database, session_factory, transaction
    from storage.sitefile.load import load_site
    from storage.sitefile.parse import SiteFileError, parse_site_file

    try:
        spec = parse_site_file(Path(args.file))
    except SiteFileError as exc:
        print(exc, file=sys.stderr)
        return 1
    engine = open_database(settings.database_url)
    with transaction(session_factory(engine)) as session:
        print(load_site(session, spec).describe())
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Everything for a first look: schema, the demo site 荔园, a demo login, devices, the API."""
    from server.auth import create_user, set_password
    from storage.db import open_database, session_factory, transaction
    from storage.models import User
    from storage.sitefile.load import load_site
    from storage.sitefile.parse import parse_site_file

    if settings.env == "prod":
        print(
            "error: `patrol demo` makes an admin user 'demo' and runs simulated devices: refused with "
            "PATROL_ENV=prod. Use `patrol serve` (or `patrol gateway` and `patrol api`) and `patrol user add`.",
            file=sys.stderr,
        )
        return 2
    if not _ports_free(settings):  # before the demo password is reset and anything is started
        return 2
    engine = open_database(settings.database_url)
    password = secrets.token_urlsafe(9)  # fresh each start: no password is written in the repo
    with transaction(session_factory(engine)) as session:
        print(load_site(session, parse_site_file(DEMO_SITE)).describe())
        for username, role, name in DEMO_USERS:
            if session.query(User).filter_by(username=username).first() is None:
                create_user(session, username, password, role, name, datetime.now(UTC))
            else:
                set_password(session, username, password)
    engine.dispose()
    base = f"http://{settings.api_host}:{settings.api_port}"
    print(
        f"\n  Dashboard  {base}/   (control room 监控中心)"
        f"\n  Guard page {base}/ui/guard.html   (on a phone: the guard's round and tickets 巡逻岗)"
        f"\n  API        {base}/docs\n  Sign-ins   {base}/api/v1/signins"
        f"\n  Live feed  ws://{settings.api_host}:{settings.api_port}/api/v1/live (token in the first message)"
        f"\n  Demo login user 'demo', password '{password}'"
        "\n             an admin: may do everything; for a first look only (real users: patrol user add)"
        f"\n  Guard login user 'G001' (张伟, the guard's staff code), same password\n",
        flush=True,
    )
    from devices.findings_reporter import ApiLogin

    args.simulate = DEMO_SITE
    args.api_login = ApiLogin(base, "demo", password)
    return cmd_serve(settings, args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="patrol", description="IoT patrol and incident monitoring (物业巡查)")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="broker (embedded unless PATROL_MQTT_URL), gateway and API in one process")
    serve.add_argument("--simulate", type=Path, metavar="SITE_FILE", help="also run simulated devices for this site")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("gateway", help="the MQTT gateway alone (production; several may run)").set_defaults(
        func=cmd_gateway
    )
    sub.add_parser("api", help="the HTTP API alone (production)").set_defaults(func=cmd_api)
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(func=cmd_migrate)
    sub.add_parser(
        "demo", help="load the demo site 荔园, make a demo login, serve with simulated devices"
    ).set_defaults(func=cmd_demo)
    site = sub.add_parser("site", help="site files").add_subparsers(dest="site_command", required=True)
    load = site.add_parser("load", help="create or update a site from a YAML site file (idempotent)")
    load.add_argument("file")
    load.set_defaults(func=cmd_site_load)
    user = sub.add_parser("user", help="API users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--name", help="display name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=cmd_user_add)
    passwd = user.add_parser("passwd", help="set a new password (revokes the user's tokens)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    passwd.set_defaults(func=cmd_user_passwd)
    for verb, text in (("disable", "disable a user and revoke their tokens"), ("enable", "enable a disabled user")):
        toggle = user.add_parser(verb, help=text)
        toggle.add_argument("username")
        toggle.set_defaults(func=cmd_user_disable)
    device = sub.add_parser("device", help="field devices on the broker").add_subparsers(
        dest="device_command", required=True
    )
    prov = device.add_parser("provision", help="write the broker's password file, ACL and device credentials")
    prov.add_argument("--out", metavar="DIR", help="where to write (default: PATROL_BROKER_ACCOUNTS_DIR or var/broker)")
    for flag, text in (("--gateway", "a gateway account"), ("--live", "a live-feed account (one per API process)")):
        prov.add_argument(flag, action="append", metavar="NAME", help=f"{text}; repeat for several")
    prov.add_argument(
        "--rotate", nargs="*", metavar="USERNAME", help="new passwords for these accounts (all accounts if none named)"
    )
    prov.add_argument(
        "--remove", action="append", default=[], metavar="NAME", help="drop a service account an earlier run made"
    )
    prov.set_defaults(func=cmd_device_provision)
    sim = sub.add_parser("simulate", help="publish simulated taps, telemetry and status for a site file")
    sim.add_argument("--site-file", default=str(DEMO_SITE))
    sim.add_argument("--broker", help="mqtt://host:port (default: PATROL_MQTT_URL or the embedded broker)")
    sim.add_argument("--tap-every", type=float, default=3.0, help="seconds between taps of each reader")
    sim.add_argument("--telemetry-every", type=float, default=10.0, help="seconds between readings of each sensor")
    sim.add_argument("--duration", type=float, help="stop after this many seconds")
    sim.add_argument(
        "--credentials",
        metavar="FILE",
        help="devices' username:password lines from `patrol device provision` (default: the embedded broker's)",
    )
    sim.set_defaults(func=cmd_simulate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValueError as exc:  # pydantic's ValidationError included; its text never holds the input values
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings)
    return int(args.func(settings, args))


if __name__ == "__main__":
    sys.exit(main())
