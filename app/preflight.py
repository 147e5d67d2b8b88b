"""Checks before a `patrol` command starts anything: are the ports it will listen on free?

`patrol demo` used to find a busy API port only after it had started the broker, the gateway and
the simulated devices, and reset the demo password. Now each port is tried first, and the error
names the port and the variable that moves it.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from core.config import Settings


class PortBusyError(RuntimeError):
    """A port this command must listen on is taken; the message says which and what to change."""


@dataclass(frozen=True)
class Listener:
    what: str
    host: str
    port: int
    variable: str
    alternative: str = ""


def listeners(settings: Settings, *, api: bool = True, broker: bool = True) -> list[Listener]:
    """What `patrol serve`/`demo` (api and broker) or `patrol api` (api only) will listen on."""
    found: list[Listener] = []
    if broker and settings.embedded_broker:
        b = settings.broker
        found.append(
            Listener(
                "embedded MQTT broker",
                b.host,
                b.port,
                "PATROL_EMBEDDED_BROKER_PORT",
                " (or PATROL_MQTT_URL to use a broker that is already running)",
            )
        )
    if api:
        found.append(Listener("API", settings.api_host, settings.api_port, "PATROL_API_PORT"))
    return found


def port_is_free(host: str, port: int) -> bool:
    """Binds and releases the port the way uvicorn and the broker will (SO_REUSEADDR), so a port
    left in TIME_WAIT by our own last run counts as free, and one with a listener does not."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def check_ports(settings: Settings, *, api: bool = True, broker: bool = True) -> None:
    """PortBusyError naming every busy port and the variable to change; nothing is started here."""
    busy = [lst for lst in listeners(settings, api=api, broker=broker) if not port_is_free(lst.host, lst.port)]
    if busy:
        lines = [
            f"{lst.what}: port {lst.port} on {lst.host} is in use (端口已被占用). Stop what uses it "
            f"(e.g. `ss -ltnp 'sport = :{lst.port}'` shows it) or set {lst.variable} to a free port{lst.alternative}."
            for lst in busy
        ]
        raise PortBusyError("\n".join(lines) + "\nNothing was started and nothing was changed.")
