"""The embedded broker's (amqtt 0.12) door: the same password and ACL files as Mosquitto, the same rules.

`PasswordFileAuth` refuses anonymous clients, checks `$7$` hashes, refuses a client id that names
another account (or a `patrol-` id from a device) and a Last Will on a topic the client may not
publish to (amqtt would otherwise send it unchecked when the client drops). `AclTopicCheck`
answers amqtt's three questions — may this client publish here, subscribe to this filter, receive
this message — from the ACL file. Both re-read the files when they change on disk, so a
`patrol device provision` run while the broker runs takes effect without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from core.broker_access import Rule, client_id_allowed, may_publish, may_receive, may_subscribe, parse_acl
from core.mqtt_passwords import parse_password_file, verify_password

log = logging.getLogger(__name__)
REFRESH_S = 1.0  # a provisioning run takes effect within this long


class AccessFiles:
    """The password and ACL files, re-read when either changes; a broken file keeps the last good rules."""

    _shared: ClassVar[dict[tuple[Path, Path], AccessFiles]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, passwd: Path, acl: Path) -> None:
        self.passwd, self.acl = passwd, acl
        self.hashes: dict[str, str] = {}
        self.rules: dict[str, tuple[Rule, ...]] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = -REFRESH_S  # time.monotonic() of the last look at the files

    @classmethod
    def shared(cls, passwd: Path, acl: Path) -> AccessFiles:
        """One instance per pair of files, shared by the auth and topic plugins."""
        with cls._shared_lock:
            return cls._shared.setdefault((passwd, acl), cls(passwd, acl))

    def refresh(self) -> None:
        """At most once a second: it runs on the broker's event loop for every packet and delivery."""
        now = time.monotonic()
        if now - self._checked < REFRESH_S:
            return
        self._checked = now
        try:
            stamp = (self.passwd.stat().st_mtime_ns, self.acl.stat().st_mtime_ns)
        except OSError as exc:
            log.error("broker access files unreadable (%s): every client is refused until they are back", exc)
            self.hashes, self.rules, self._stamp = {}, {}, None
            return
        if stamp == self._stamp:
            return
        try:
            hashes = parse_password_file(self.passwd.read_text())
            rules = parse_acl(self.acl.read_text())
        except (OSError, ValueError) as exc:
            log.error("broker access files not reloaded, keeping the previous ones: %s", exc)
            return
        self.hashes, self.rules, self._stamp = hashes, rules, stamp
        log.info("broker access: %d accounts from %s", len(hashes), self.passwd)


@dataclass
class AccessConfig:
    """Both plugins' configuration: the files `patrol device provision` writes."""

    password_file: str = ""
    acl_file: str = ""


def _files(config: AccessConfig) -> AccessFiles:
    return AccessFiles.shared(Path(config.password_file), Path(config.acl_file))


class PasswordFileAuth(BaseAuthPlugin):
    Config = AccessConfig

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._files = _files(self.config)

    async def authenticate(self, *, session: Session) -> bool | None:
        return check_connect(self._files, session)


def check_connect(files: AccessFiles, session: Session) -> bool:
    """Credentials, client id and Last Will, as Mosquitto with `use_username_as_clientid` would allow."""
    files.refresh()
    who = f"client {session.client_id!r} user {session.username!r}"
    encoded = files.hashes.get(session.username or "")
    if not session.username or encoded is None or not verify_password(str(session.password or ""), encoded):
        log.warning("MQTT connection refused, bad or missing credentials: %s", who)
        return False
    if session.client_id and not client_id_allowed(session.client_id, session.username, files.hashes):
        log.warning("MQTT connection refused, client id reserved for another account: %s", who)
        return False
    rules = files.rules.get(session.username, ())
    if session.will_flag and session.will_topic and not may_publish(rules, session.will_topic):
        log.warning("MQTT connection refused, Last Will on %s not allowed: %s", session.will_topic, who)
        return False
    return True


class AclTopicCheck(BaseTopicPlugin):
    Config = AccessConfig

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._files = _files(self.config)

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        if session is None or not session.username or not topic:
            return False
        self._files.refresh()
        rules = self._files.rules.get(session.username, ())
        if action == Action.PUBLISH:
            allowed = may_publish(rules, topic)
        elif action == Action.SUBSCRIBE:
            allowed = may_subscribe(rules, topic)
        elif action == Action.RECEIVE:
            allowed = may_receive(rules, topic)
        else:
            allowed = False
        if not allowed and action != Action.RECEIVE:
            log.warning("MQTT %s on %s denied for user %r", action, topic, session.username)
        return allowed
