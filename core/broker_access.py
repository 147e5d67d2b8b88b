"""Who may speak on the broker: the accounts, the topics each may publish and read, and the ACL file.

One set of rules serves both brokers: `patrol device provision` writes them as a Mosquitto ACL file,
and the embedded broker reads that same file back (`parse_acl`) and enforces it with
`may_publish` / `may_receive` / `may_subscribe`. A device publishes only under its own topics, by
its kind (device contract v1), and reads only its own answers; the gateway alone reads
`patrol/v1/#` and writes `out/` and the readers' acks; the live feed only reads `out/`.

Device accounts are named `{site}.{device}` (ids are `[A-Za-z0-9_-]`, so the dot is unambiguous and
the name never holds the `:` of a password file). Mosquitto's `pattern` lines cannot bind both the
site and the device kind from one username, so every account gets its own `user`/`topic` lines:
the file is generated, so being explicit costs nothing and states exactly what each may do.

Each gateway `G` has a second account `G-slow` for its slow-lane session (a flooding device's topics move
there so its backlog queues at the broker apart from everyone else's; docs/metrics.md). Mosquitto binds
the client id to the username, so a second session needs a second account; it has the gateway's rules
and the gateway's password, so the gateway process derives it and needs no second secret.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from core.contract import ID_PATTERN, PREFIX, ack_topic, event_topic, status_topic, tap_topic, telemetry_topic
from core.directory import READER_KINDS, SENSOR_KINDS

Access = Literal["read", "write", "readwrite"]
Role = Literal["gateway", "live", "device"]  # for people reading the ACL; code tells devices by their dot

GATEWAY_ACCOUNT = "patrol-gateway"
LIVE_ACCOUNT = "patrol-live"
#: Appended to a gateway's username for its slow-lane account (`patrol-gateway-slow`).
SLOW_LANE_SUFFIX = "-slow"
#: Service names are at most 64 characters (`ID_PATTERN`); a gateway's must leave room for the suffix.
MAX_GATEWAY_NAME = 64 - len(SLOW_LANE_SUFFIX)
#: Client ids with this prefix belong to the product's own processes: only service accounts may use them.
SERVICE_CLIENT_PREFIX = "patrol-"

ALL_TOPICS = f"{PREFIX}/#"
OUT_TOPICS = f"{PREFIX}/+/out/#"
ALL_ACKS = f"{PREFIX}/+/reader/+/ack"


@dataclass(frozen=True, slots=True)
class Rule:
    access: Access
    topic: str  # an MQTT topic filter

    @property
    def reads(self) -> bool:
        return self.access in ("read", "readwrite")

    @property
    def writes(self) -> bool:
        return self.access in ("write", "readwrite")


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    role: Role
    rules: tuple[Rule, ...]
    #: Another account (listed before this one) whose password this one has: a slow lane shares its gateway's.
    shares_password_with: str | None = None


def device_username(site: str, device: str) -> str:
    return f"{site}.{device}"


def device_account(site: str, device: str, kind: str) -> Account:
    """A reader publishes taps and reads its acks; a sensor publishes telemetry and events; both publish status."""
    rules = [Rule("write", status_topic(site, device))]
    if kind in READER_KINDS:
        rules += [Rule("write", tap_topic(site, device)), Rule("read", ack_topic(site, device))]
    elif kind in SENSOR_KINDS:
        rules += [Rule("write", telemetry_topic(site, device)), Rule("write", event_topic(site, device))]
    else:
        raise ValueError(f"device {site}/{device} has unknown kind {kind!r}: fix the site file and load it again")
    return Account(device_username(site, device), "device", tuple(rules))


def gateway_account(username: str = GATEWAY_ACCOUNT) -> Account:
    """Reads everything under the prefix (to quarantine strays too); writes answers and out/ events."""
    rules = (Rule("read", ALL_TOPICS), Rule("write", OUT_TOPICS), Rule("write", ALL_ACKS))
    return Account(service_name(username), "gateway", rules)


def slow_lane_username(username: str) -> str:
    """The slow-lane account of gateway `username`: a name too long for it is refused when provisioning,
    with the limit, rather than found later as a slow-lane session that cannot log in."""
    if len(service_name(username)) > MAX_GATEWAY_NAME:
        raise ValueError(
            f"gateway account name {username!r} has {len(username)} characters: use at most {MAX_GATEWAY_NAME},"
            f" so that its slow-lane account ({username}{SLOW_LANE_SUFFIX}) is a valid service account name too"
        )
    return service_name(username + SLOW_LANE_SUFFIX)


def slow_lane_account(username: str = GATEWAY_ACCOUNT) -> Account:
    """The second session of gateway `username` (gateway/lanes.py): the two sessions swap roles, so it
    has the gateway's rights (it publishes answers while it hears the other devices); in provisioning
    it has the gateway's password."""
    gateway = gateway_account(username)
    return Account(slow_lane_username(username), "gateway", gateway.rules, shares_password_with=gateway.username)


def live_account(username: str = LIVE_ACCOUNT) -> Account:
    """The API's live feed: reads out/ events only."""
    return Account(service_name(username), "live", (Rule("read", OUT_TOPICS),))


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching of a concrete topic against a filter (`+` one level, `#` the rest)."""
    f_levels, t_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return not (i == 0 and topic.startswith("$"))
        if i >= len(t_levels) or (level != "+" and level != t_levels[i]):
            return False
        if level == "+" and i == 0 and topic.startswith("$"):
            return False
    return len(f_levels) == len(t_levels)


def filter_covered(topic_filter: str, by: str) -> bool:
    """Whether every topic that `topic_filter` matches is also matched by the filter `by`."""
    f_levels, b_levels = topic_filter.split("/"), by.split("/")
    for i, b in enumerate(b_levels):
        if b == "#":
            return True
        if i >= len(f_levels):
            return False
        f = f_levels[i]
        if f == "#" or (b != "+" and (f == "+" or f != b)):
            return False
    return len(f_levels) == len(b_levels)


def may_publish(rules: Iterable[Rule], topic: str) -> bool:
    return any(r.writes and topic_matches(r.topic, topic) for r in rules)


def may_receive(rules: Iterable[Rule], topic: str) -> bool:
    return any(r.reads and topic_matches(r.topic, topic) for r in rules)


def may_subscribe(rules: Iterable[Rule], topic_filter: str) -> bool:
    """Granted only for a filter wholly inside what the account may read (a device's `#` is refused);
    each delivery is checked again with `may_receive`."""
    return any(r.reads and filter_covered(topic_filter, r.topic) for r in rules)


def is_device_username(username: str) -> bool:
    """Device accounts are `{site}.{device}`; service accounts never hold a dot (see `service_name`)."""
    return "." in username


def service_name(name: str) -> str:
    """A valid service account name, or an error that says what to use."""
    if not re.fullmatch(ID_PATTERN, name):
        raise ValueError(f"service account name {name!r} must match {ID_PATTERN} (letters, digits, _ and -)")
    return name


def client_id_allowed(client_id: str, username: str | None, accounts: Collection[str]) -> bool:
    """A client id that names an account, or starts with `patrol-`, needs that account (or a service
    account): nobody takes over the gateway's session, or a device's, without its password."""
    if client_id in accounts:
        return username == client_id
    if client_id.startswith(SERVICE_CLIENT_PREFIX):
        return username is not None and username in accounts and not is_device_username(username)
    return True


def render_acl(accounts: Iterable[Account]) -> str:
    lines = [
        "# Generated by `patrol device provision`: edit the site file or the command's options, not this file.",
        "# Nothing is granted to anonymous clients (no topic lines before the first `user`).",
        "",
    ]
    for account in accounts:
        shared = f", same password as {account.shares_password_with}" if account.shares_password_with else ""
        lines.append(f"# {account.role}{shared}")
        lines.append(f"user {account.username}")
        lines += [f"topic {r.access} {r.topic}" for r in account.rules]
        lines.append("")
    return "\n".join(lines)


def parse_acl(text: str) -> dict[str, tuple[Rule, ...]]:
    """The `user`/`topic` subset of Mosquitto's ACL syntax that `render_acl` writes.

    Lines this subset does not know (`pattern`, topics for anonymous) raise, so the embedded broker
    never silently enforces less than Mosquitto would."""
    rules: dict[str, list[Rule]] = {}
    user: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "user" and rest.strip():
            user = rest.strip()
            rules.setdefault(user, [])
            continue
        if word == "topic" and user is not None:
            access, _, topic = rest.strip().partition(" ")
            if access in ("read", "write", "readwrite") and topic.strip():
                rules[user].append(Rule(access, topic.strip()))  # type: ignore[arg-type]
                continue
        raise ValueError(f"ACL line {number} not understood ({line!r}): regenerate it with `patrol device provision`")
    return {u: tuple(r) for u, r in rules.items()}
