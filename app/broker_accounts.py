"""`patrol device provision`: the broker's password file, ACL file and the installer's credentials.

Every active device in the database gets an account of its own, plus the service accounts (the
gateway, one per gateway process of a shared group, each with its slow-lane account `G-slow`, and the
API's live feed). Passwords are random, kept across runs (so re-provisioning after adding a device
does not lock out the others) unless rotated, and written only to a 0600 credentials file, never to
a log. The password and ACL files hold no secret (hashes and topics) and are what Mosquitto and the
embedded broker both read.

A slow-lane account always has its gateway's password (the gateway process derives it from its own):
provisioning copies it on every run, so rotating the gateway rotates its slow lane too.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine

from core.broker_access import (
    ALL_TOPICS,
    GATEWAY_ACCOUNT,
    LIVE_ACCOUNT,
    SLOW_LANE_SUFFIX,
    Account,
    Rule,
    device_account,
    gateway_account,
    is_device_username,
    live_account,
    parse_acl,
    render_acl,
    slow_lane_account,
)
from core.config import Settings
from core.directory import Directory
from core.mqtt_passwords import hash_password, parse_credentials, render_credentials, render_password_file

log = logging.getLogger(__name__)
PASSWORD_BYTES = 24  # 32 URL-safe characters


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """Where provisioning writes: `passwd` and `acl` for the broker, `credentials` (0600) for the installer."""

    directory: Path

    @property
    def passwd(self) -> Path:
        return self.directory / "passwd"

    @property
    def acl(self) -> Path:
        return self.directory / "acl"

    @property
    def credentials(self) -> Path:
        return self.directory / "credentials"

    def read_credentials(self) -> dict[str, str]:
        return parse_credentials(self.credentials.read_text()) if self.credentials.exists() else {}


@dataclass(frozen=True)
class Provisioned:
    files: BrokerFiles
    accounts: tuple[Account, ...]
    created: tuple[str, ...]
    rotated: tuple[str, ...]
    removed: tuple[str, ...]
    passwords: dict[str, str]  # secret: for the process that provisioned, never logged

    def describe(self) -> str:
        devices = sum(1 for a in self.accounts if a.role == "device")
        services = ", ".join(a.username for a in self.accounts if a.role != "device")
        return "\n".join(
            [
                f"MQTT accounts / 账号: {devices} devices, service accounts {services}",
                f"  new {len(self.created)}, rotated {len(self.rotated)}, removed {len(self.removed)}"
                + (f" ({', '.join(self.removed)})" if self.removed else ""),
                f"  password file  {self.files.passwd}  (Mosquitto password_file; hashes only)",
                f"  ACL file       {self.files.acl}  (Mosquitto acl_file)",
                f"  credentials    {self.files.credentials}  (0600, SECRET: one username:password per line)",
            ]
        )


def accounts_for(
    directory: Directory, gateways: Sequence[str] = (GATEWAY_ACCOUNT,), live: Sequence[str] = (LIVE_ACCOUNT,)
) -> list[Account]:
    """Service accounts first (each gateway followed by its slow lane), then every device of every site in a
    stable order."""
    accounts = [a for name in gateways for a in (gateway_account(name), slow_lane_account(name))]
    accounts += [live_account(name) for name in live]
    for (site, code), entry in sorted(directory.devices.items()):
        accounts.append(device_account(site, code, entry.kind))
    names = [a.username for a in accounts]
    if len(set(names)) != len(names):
        raise ValueError(
            f"account names must be distinct: {sorted({n for n in names if names.count(n) > 1})}"
            f" (each gateway G also has a slow-lane account G{SLOW_LANE_SUFFIX}: do not name that as a gateway)"
        )
    return accounts


def provision(files: BrokerFiles, accounts: Iterable[Account], rotate: Collection[str] | bool = False) -> Provisioned:
    """Write the three files, keeping each existing account's password unless it is rotated.

    `rotate=True` rotates every account; a collection rotates those usernames. An account that shares another's
    password (a slow lane) copies it, so it is rotated exactly when that one is; `rotated` lists the accounts
    whose password changed, `created` those that had none."""
    accounts = tuple(accounts)
    old = files.read_credentials()
    passwords: dict[str, str] = {}
    created: list[str] = []
    rotated: list[str] = []
    for account in accounts:
        name = account.username
        passwords[name] = _password(account, old.get(name), passwords, rotate)
        if name not in old:
            created.append(name)
        elif passwords[name] != old[name]:
            rotated.append(name)
    removed = tuple(sorted(set(old) - set(passwords)))
    files.directory.mkdir(parents=True, exist_ok=True)
    _write(files.credentials, render_credentials(passwords), 0o600)
    _write(files.passwd, render_password_file({u: hash_password(p) for u, p in passwords.items()}), 0o644)
    _write(files.acl, render_acl(accounts), 0o644)
    log.info(
        "provisioned %d MQTT accounts in %s (new %d, rotated %d, removed %d)",
        len(accounts),
        files.directory,
        len(created),
        len(rotated),
        len(removed),
    )
    return Provisioned(files, accounts, tuple(created), tuple(rotated), removed, passwords)


def _password(account: Account, current: str | None, passwords: dict[str, str], rotate: Collection[str] | bool) -> str:
    """This run's password: the current one unless rotated; for an account that shares another's (provisioned
    before it, in `passwords`), that one's, whatever `rotate` names."""
    named: Collection[str] = () if isinstance(rotate, bool) else rotate
    owner = account.shares_password_with
    if owner is None:
        if current is not None and not (rotate is True or account.username in named):
            return current
        return secrets.token_urlsafe(PASSWORD_BYTES)
    if owner not in passwords:
        raise ValueError(
            f"account {account.username} shares the password of {owner}, which is not provisioned before it:"
            " list the account that owns the password first"
        )
    if account.username in named and owner not in named:
        log.warning("%s has the password of %s: rotate %s to renew both", account.username, owner, owner)
    return passwords[owner]


def provision_from_database(
    engine: Engine,
    files: BrokerFiles,
    gateways: Sequence[str] = (GATEWAY_ACCOUNT,),
    live: Sequence[str] = (LIVE_ACCOUNT,),
    rotate: Collection[str] | bool = False,
    remove: Collection[str] = (),
) -> Provisioned:
    """Accounts for every active device in the database, the service accounts named, and those an earlier
    run made (unless in `remove`)."""
    from storage.db import session_factory
    from storage.directory import load_directory

    with session_factory(engine)() as session:
        directory = load_directory(session)
    kept_gateways, kept_live = previous_services(files)
    gateways = list(dict.fromkeys([*gateways, *(g for g in kept_gateways if g not in remove)]))
    live = list(dict.fromkeys([*live, *(n for n in kept_live if n not in remove)]))
    return provision(files, accounts_for(directory, gateways, live), rotate)


def previous_services(files: BrokerFiles) -> tuple[list[str], list[str]]:
    """The service accounts an earlier run made (gateways, live feeds), so a re-run after adding a device
    does not lock out a second gateway that was named only the first time."""
    if not files.acl.exists():
        return [], []
    try:
        rules = parse_acl(files.acl.read_text())
    except ValueError:
        log.warning("existing ACL file %s not understood: only the service accounts named now are kept", files.acl)
        return [], []
    services = {name: r for name, r in rules.items() if not is_device_username(name)}
    gateways = [name for name, r in services.items() if Rule("read", ALL_TOPICS) in r]
    return _without_slow_lanes(gateways), [name for name in services if name not in gateways]


def _without_slow_lanes(gateways: list[str]) -> list[str]:
    """`G-slow` beside `G` is G's slow lane, which `accounts_for` makes again, not a gateway of its own (else
    every re-run would add `G-slow-slow`); and `--remove G` then drops both."""
    present = set(gateways)
    return [g for g in gateways if not (g.endswith(SLOW_LANE_SUFFIX) and g[: -len(SLOW_LANE_SUFFIX)] in present)]


def with_service_credentials(settings: Settings, passwords: dict[str, str]) -> Settings:
    """The settings a process on the embedded broker runs with: the gateway's and the live feed's accounts."""
    missing = [name for name in (GATEWAY_ACCOUNT, LIVE_ACCOUNT) if name not in passwords]
    if missing:
        raise RuntimeError(f"no credentials for {', '.join(missing)}: run `patrol device provision` again")
    return settings.model_copy(
        update={
            "mqtt_username": GATEWAY_ACCOUNT,
            "mqtt_password": SecretStr(passwords[GATEWAY_ACCOUNT]),
            "mqtt_live_username": LIVE_ACCOUNT,
            "mqtt_live_password": SecretStr(passwords[LIVE_ACCOUNT]),
        }
    )


def _write(path: Path, text: str, mode: int) -> None:
    """Atomically, created with its final mode (the secret never exists world-readable, even briefly)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
