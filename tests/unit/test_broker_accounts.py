"""Broker accounts (issue 6 item 12): Mosquitto's `$7$` password hashes, the ACL rules each account gets, and
provisioning that keeps, rotates and removes passwords."""

from __future__ import annotations

import logging
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from app.broker_accounts import BrokerFiles, accounts_for, previous_services, provision
from core.broker_access import (
    GATEWAY_ACCOUNT,
    LIVE_ACCOUNT,
    MAX_GATEWAY_NAME,
    Account,
    Rule,
    client_id_allowed,
    device_account,
    filter_covered,
    gateway_account,
    live_account,
    may_publish,
    may_receive,
    may_subscribe,
    parse_acl,
    render_acl,
    slow_lane_account,
    slow_lane_username,
    topic_matches,
)
from core.directory import DeviceEntry, Directory
from core.mqtt_passwords import hash_password, parse_credentials, parse_password_file, verify_password

READER = device_account("liyuan", "rdr-h01", "handheld_reader")
SLOW = f"{GATEWAY_ACCOUNT}-slow"
GATEWAY_2 = "patrol-gateway-2"
SENSOR = device_account("liyuan", "gas-b3", "gas")


def test_hash_is_pbkdf2_sha512_in_mosquittos_format() -> None:
    encoded = hash_password("s3cret", salt=b"0123456789ab")
    kind, iterations, salt, digest = encoded.split("$")[1:]
    assert (kind, iterations, salt) == ("7", "101", "MDEyMzQ1Njc4OWFi") and len(digest) == 88
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret ", encoded)
    assert hash_password("s3cret") != hash_password("s3cret"), "a fresh salt each time"


@pytest.mark.parametrize(
    "encoded",
    ["", "plain", "$6$salt$hash", "$7$x$AAAA$AAAA", "$7$101$not base64!$AAAA", "$7$0$AAAA$AAAA", "$7$101$AAAA"],
)
def test_malformed_or_foreign_hashes_never_verify(encoded: str) -> None:
    assert not verify_password("anything", encoded)


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd is not installed")
def test_hashes_cross_check_with_mosquitto_passwd(tmp_path: Path) -> None:
    """What `mosquitto_passwd -b` writes, we verify; what we write, Mosquitto reads (tests/integration proves it)."""
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "liyuan.rdr-h01", "pä$$:word"], check=True)
    encoded = parse_password_file(passwd.read_text())["liyuan.rdr-h01"]
    assert encoded.startswith("$7$101$")
    assert verify_password("pä$$:word", encoded) and not verify_password("pa$$:word", encoded)


def test_a_reader_publishes_only_its_taps_and_status_and_reads_only_its_acks() -> None:
    rules = READER.rules
    assert may_publish(rules, "patrol/v1/liyuan/reader/rdr-h01/tap")
    assert may_publish(rules, "patrol/v1/liyuan/device/rdr-h01/status")
    assert may_receive(rules, "patrol/v1/liyuan/reader/rdr-h01/ack")
    for topic in (
        "patrol/v1/liyuan/reader/rdr-h02/tap",  # another reader
        "patrol/v1/other/reader/rdr-h01/tap",  # the same code at another site
        "patrol/v1/liyuan/sensor/rdr-h01/telemetry",  # another kind's channel
        "patrol/v1/liyuan/reader/rdr-h01/ack",  # answers are the gateway's to write
        "patrol/v1/liyuan/out/signins",
    ):
        assert not may_publish(rules, topic), topic
    assert not may_receive(rules, "patrol/v1/liyuan/reader/rdr-h02/ack")
    assert not may_receive(rules, "patrol/v1/liyuan/reader/rdr-h01/tap")


def test_a_sensor_publishes_telemetry_events_and_status_only() -> None:
    assert {r.topic.rsplit("/", 1)[1] for r in SENSOR.rules if r.writes} == {"telemetry", "event", "status"}
    assert not any(r.reads for r in SENSOR.rules)
    assert not may_publish(SENSOR.rules, "patrol/v1/liyuan/reader/gas-b3/tap")
    with pytest.raises(ValueError, match="unknown kind"):
        device_account("liyuan", "x", "toaster")


def test_only_the_gateway_reads_everything_and_writes_answers_and_out() -> None:
    gw, live = gateway_account(), live_account()
    assert may_subscribe(gw.rules, "patrol/v1/#") and may_receive(gw.rules, "patrol/v1/liyuan/reader/r/tap")
    assert may_publish(gw.rules, "patrol/v1/liyuan/reader/r/ack") and may_publish(gw.rules, "patrol/v1/liyuan/out/x")
    assert not may_publish(gw.rules, "patrol/v1/liyuan/reader/r/tap"), "the gateway never forges a tap either"
    assert may_subscribe(live.rules, "patrol/v1/+/out/#") and not may_subscribe(live.rules, "patrol/v1/#")
    assert not any(r.writes for r in live.rules)


@pytest.mark.parametrize(
    ("topic_filter", "by", "covered"),
    [
        ("a/b/c", "a/b/c", True),
        ("a/+/c", "a/+/c", True),
        ("a/b/c", "a/+/c", True),
        ("a/+/c", "a/b/c", False),
        ("#", "a/b/c", False),
        ("a/#", "a/#", True),
        ("a", "a/#", True),
        ("a/b", "a/b/c", False),
        ("a/b/c/d", "a/b/c", False),
        ("a/b/#", "a/+/#", True),
        ("a/+/#", "a/b/#", False),
    ],
)
def test_a_subscription_must_lie_inside_what_may_be_read(topic_filter: str, by: str, covered: bool) -> None:
    assert filter_covered(topic_filter, by) is covered


def test_a_device_may_not_subscribe_to_everything() -> None:
    """Issue 6 item 12: `#` from a device is refused (the embedded broker); each delivery is checked too."""
    assert not may_subscribe(READER.rules, "#")
    assert not may_subscribe(READER.rules, "patrol/v1/+/reader/+/ack")
    assert may_subscribe(READER.rules, "patrol/v1/liyuan/reader/rdr-h01/ack")


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/#", "a", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("a/b", "a", False),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


def test_client_ids_of_accounts_and_services_need_their_account() -> None:
    accounts = {GATEWAY_ACCOUNT, LIVE_ACCOUNT, READER.username}
    assert client_id_allowed(GATEWAY_ACCOUNT, GATEWAY_ACCOUNT, accounts)
    assert not client_id_allowed(GATEWAY_ACCOUNT, READER.username, accounts)
    assert not client_id_allowed(GATEWAY_ACCOUNT, None, accounts)
    assert not client_id_allowed(READER.username, GATEWAY_ACCOUNT, accounts), "a device's session is its own"
    assert client_id_allowed("patrol-api-1a2b", LIVE_ACCOUNT, accounts)
    assert not client_id_allowed("patrol-api-1a2b", READER.username, accounts)
    assert client_id_allowed("any-other-id", READER.username, accounts)


def test_the_acl_file_reads_back_as_written() -> None:
    accounts = [gateway_account(), live_account(), READER, SENSOR]
    text = render_acl(accounts)
    assert "pattern" not in text and text.index("user ") > text.index("anonymous")
    assert parse_acl(text) == {a.username: a.rules for a in accounts}
    assert parse_acl("user x\ntopic readwrite a/#\n") == {"x": (Rule("readwrite", "a/#"),)}
    for bad in ("topic read a/#", "pattern read %u/#", "user x\ntopic delete a"):
        with pytest.raises(ValueError, match="patrol device provision"):
            parse_acl(bad)


def _directory(*codes: str) -> Directory:
    return Directory(
        devices={("liyuan", c): DeviceEntry(i, 1, "liyuan", c, "fixed_reader", None, None) for i, c in enumerate(codes)}
    )


def test_provision_keeps_passwords_rotates_on_request_and_drops_removed_devices(tmp_path: Path) -> None:
    files = BrokerFiles(tmp_path / "broker")
    first = provision(files, accounts_for(_directory("r1", "r2")))
    assert set(first.created) == {GATEWAY_ACCOUNT, SLOW, LIVE_ACCOUNT, "liyuan.r1", "liyuan.r2"}
    assert stat.S_IMODE(files.credentials.stat().st_mode) == 0o600
    assert parse_credentials(files.credentials.read_text()) == first.passwords
    hashes = parse_password_file(files.passwd.read_text())
    assert all(verify_password(first.passwords[u], h) for u, h in hashes.items())
    assert set(parse_acl(files.acl.read_text())) == set(first.passwords)

    again = provision(files, accounts_for(_directory("r1", "r3")), rotate={"liyuan.r1"})
    assert again.created == ("liyuan.r3",) and again.rotated == ("liyuan.r1",) and again.removed == ("liyuan.r2",)
    assert again.passwords[GATEWAY_ACCOUNT] == first.passwords[GATEWAY_ACCOUNT]
    assert again.passwords["liyuan.r1"] != first.passwords["liyuan.r1"]
    assert "liyuan.r2" not in parse_password_file(files.passwd.read_text())
    assert first.passwords[GATEWAY_ACCOUNT] not in again.describe(), "no secret in what is printed"

    everything = provision(files, accounts_for(_directory("r1", "r3")), rotate=True)
    assert set(everything.rotated) == set(again.passwords)


def test_service_account_names_are_checked() -> None:
    with pytest.raises(ValueError, match="service account name"):
        accounts_for(_directory(), gateways=("gw.1",))
    with pytest.raises(ValueError, match="distinct"):
        accounts_for(_directory(), gateways=("gw", "gw"))


def test_each_gateway_has_a_slow_lane_account_with_its_rules_and_its_password(tmp_path: Path) -> None:
    """docs/broker-access.md, slow lane: every gateway G has `G-slow`, right after it, with G's password and
    rights (the two sessions swap roles: the second one publishes answers while it hears the other devices)."""
    accounts = accounts_for(_directory("r1"), gateways=(GATEWAY_ACCOUNT, GATEWAY_2))
    assert [a.username for a in accounts[:5]] == [GATEWAY_ACCOUNT, SLOW, GATEWAY_2, f"{GATEWAY_2}-slow", LIVE_ACCOUNT]
    for gateway, slow in (accounts[0:2], accounts[2:4]):
        assert slow == slow_lane_account(gateway.username)
        assert (slow.role, slow.rules, slow.shares_password_with) == ("gateway", gateway.rules, gateway.username)

    files = BrokerFiles(tmp_path / "broker")
    done = provision(files, accounts)
    assert {SLOW, f"{GATEWAY_2}-slow"} <= set(done.created)
    assert done.passwords[SLOW] == done.passwords[GATEWAY_ACCOUNT] != done.passwords[GATEWAY_2]
    assert done.passwords[f"{GATEWAY_2}-slow"] == done.passwords[GATEWAY_2]
    assert verify_password(done.passwords[GATEWAY_ACCOUNT], parse_password_file(files.passwd.read_text())[SLOW])
    assert parse_acl(files.acl.read_text())[SLOW] == gateway_account().rules


def test_the_slow_lane_keeps_its_gateways_password_through_reruns_and_rotations(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/broker-access.md, slow lane: same password as its gateway after every run; rotating the gateway rotates
    both, and `rotated` lists only accounts whose password changed."""
    files = BrokerFiles(tmp_path / "broker")
    accounts = accounts_for(_directory("r1"))
    first = provision(files, accounts)

    again = provision(files, accounts)
    assert again.passwords == first.passwords and again.created == again.rotated == ()

    gateway = provision(files, accounts, rotate={GATEWAY_ACCOUNT})
    assert gateway.rotated == (GATEWAY_ACCOUNT, SLOW)
    assert gateway.passwords[SLOW] == gateway.passwords[GATEWAY_ACCOUNT] != first.passwords[GATEWAY_ACCOUNT]

    with caplog.at_level(logging.WARNING, logger="app.broker_accounts"):
        slow_only = provision(files, accounts, rotate={SLOW})
    assert slow_only.rotated == () and slow_only.passwords == gateway.passwords, "nothing changed, none reported"
    assert f"rotate {GATEWAY_ACCOUNT} to renew both" in caplog.text

    everything = provision(files, accounts, rotate=True)
    assert everything.passwords[SLOW] == everything.passwords[GATEWAY_ACCOUNT] != gateway.passwords[GATEWAY_ACCOUNT]
    assert set(everything.rotated) == set(everything.passwords)


def test_a_slow_lane_found_in_the_acl_is_not_taken_for_a_gateway_of_its_own(tmp_path: Path) -> None:
    """docs/broker-access.md, slow lane: re-runs keep `G` and `G-slow` and never grow `G-slow-slow`; dropping
    G (`--remove G`) drops its slow lane with it."""
    files = BrokerFiles(tmp_path / "broker")
    provision(files, accounts_for(_directory("r1"), gateways=(GATEWAY_ACCOUNT, GATEWAY_2)))
    for _ in range(2):
        gateways, live = previous_services(files)
        assert (gateways, live) == ([GATEWAY_ACCOUNT, GATEWAY_2], [LIVE_ACCOUNT])
        provision(files, accounts_for(_directory("r1"), gateways=gateways, live=live))
    assert not any(name.endswith("-slow-slow") for name in files.read_credentials())

    kept = [g for g in previous_services(files)[0] if g != GATEWAY_2]  # what provision_from_database does
    dropped = provision(files, accounts_for(_directory("r1"), gateways=kept))
    assert dropped.removed == (GATEWAY_2, f"{GATEWAY_2}-slow")


def test_a_gateway_name_with_no_room_for_its_slow_lane_is_refused() -> None:
    """docs/broker-access.md, slow lane: service names have at most 64 characters, so a gateway's at most 59."""
    longest = "g" * MAX_GATEWAY_NAME
    assert MAX_GATEWAY_NAME == 59 and len(slow_lane_username(longest)) == 64
    with pytest.raises(ValueError, match="has 60 characters: use at most 59"):
        slow_lane_username("g" * 60)
    with pytest.raises(ValueError, match="use at most 59"):
        accounts_for(_directory(), gateways=("g" * 60,))
    with pytest.raises(ValueError, match="service account name"):
        slow_lane_account("gw.1")
    with pytest.raises(ValueError, match="slow-lane account G-slow: do not name that as a gateway"):
        accounts_for(_directory(), gateways=(GATEWAY_ACCOUNT, SLOW))


def test_a_shared_password_must_be_provisioned_before_the_account_that_shares_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="list the account that owns the password first"):
        provision(BrokerFiles(tmp_path), [slow_lane_account(), gateway_account()])
    orphan = Account("x", "gateway", (), shares_password_with="nobody")
    with pytest.raises(ValueError, match="shares the password of nobody"):
        provision(BrokerFiles(tmp_path), [orphan])
