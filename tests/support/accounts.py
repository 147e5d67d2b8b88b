"""The accounts the test brokers admit, and which of them may publish on a topic.

`demo_accounts` is what `patrol device provision` makes for the demo site, plus a second gateway (each
gateway of a shared group needs its own account, docs/broker-access.md); each gateway comes with its
slow-lane account (`patrol-gateway-slow`, same password once provisioned). `accounts_for_tests` adds two that
exist only in tests: an observer with a gateway's rights (it reads the answers and out/ events a test
checks, and stands in for the gateway when a test publishes under out/), and an unrestricted account
that stands for a broker without these ACLs (a site's own broker): the gateway's own checks of topics
and devices must hold there too, and only that account can bring such input to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.broker_access import (
    ALL_TOPICS,
    GATEWAY_ACCOUNT,
    LIVE_ACCOUNT,
    Account,
    Rule,
    device_account,
    device_username,
    gateway_account,
    live_account,
    may_publish,
    slow_lane_account,
)
from core.contract import is_own_output, parse_topic
from storage.sitefile.schema import SiteFile

SITE = "liyuan"
SECOND_GATEWAY = "patrol-gateway-2"
OBSERVER = "test-observer"
UNRESTRICTED = "test-unrestricted"

__all__ = ["GATEWAY_ACCOUNT", "LIVE_ACCOUNT", "OBSERVER", "SECOND_GATEWAY", "SITE", "UNRESTRICTED"]


def demo_accounts(site: SiteFile) -> list[Account]:
    """What `patrol device provision` makes for the demo site, plus a second gateway (shared-group style); like
    `accounts_for`, each gateway is followed by its slow lane, which `provision` gives the gateway's password."""
    gateways = [
        a for name in (GATEWAY_ACCOUNT, SECOND_GATEWAY) for a in (gateway_account(name), slow_lane_account(name))
    ]
    services = [*gateways, live_account()]
    return services + [device_account(site.site.code, d.code, d.kind) for d in site.devices]


def accounts_for_tests(site: SiteFile) -> list[Account]:
    """`demo_accounts` plus the test-only observer and unrestricted accounts (see the module docstring)."""
    unrestricted = Account(UNRESTRICTED, "gateway", (Rule("readwrite", ALL_TOPICS),))
    return [*demo_accounts(site), gateway_account(OBSERVER), unrestricted]


def publisher_of(topic: str, accounts: Mapping[str, Sequence[Rule]]) -> str | None:
    """The account that publishes on `topic` in the field: the device whose topic it is, or a gateway
    (the observer) for answers and out/ events. None when no such account may publish there."""
    if is_own_output(topic):
        return OBSERVER if may_publish(accounts.get(OBSERVER, ()), topic) else None
    parsed = parse_topic(topic)
    if parsed is None:
        return None
    username = device_username(parsed.site, parsed.device)
    return username if may_publish(accounts.get(username, ()), topic) else None
