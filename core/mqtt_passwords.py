"""Mosquitto's password file format, written and checked in Python (no `mosquitto_passwd` needed).

Mosquitto 2.0 stores `username:$7$<iterations>$<base64 salt>$<base64 hash>`: PBKDF2-HMAC-SHA512
over the password with a 12-byte salt, 101 iterations by default, a 64-byte hash. The embedded
broker verifies the same lines, so one file serves both brokers. The installer's copy of the
plain passwords uses `username:password` lines, which is also what `mosquitto_passwd -U` reads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping

ITERATIONS = 101  # mosquitto_passwd's default; the passwords are random, so the count guards little
SALT_BYTES = 12


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True only for a well-formed `$7$` hash of `password`; any other format is refused."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (ValueError, binascii.Error):
        return False
    if not 1 <= iterations <= 1_000_000:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


def _pairs(text: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, value = line.partition(":")
        if not sep or not user or not value:
            raise ValueError(f"{what} line {number} is not `username:…`: regenerate it with `patrol device provision`")
        out[user] = value
    return out


def parse_password_file(text: str) -> dict[str, str]:
    """username → `$7$` hash."""
    return _pairs(text, "password file")


def render_password_file(hashes: Mapping[str, str]) -> str:
    return "".join(f"{user}:{encoded}\n" for user, encoded in hashes.items())


def parse_credentials(text: str) -> dict[str, str]:
    """username → plain password, from the installer's credentials file."""
    return _pairs(text, "credentials file")


def render_credentials(passwords: Mapping[str, str]) -> str:
    return (
        "# MQTT credentials written by `patrol device provision`: one `username:password` per line.\n"
        "# Secret: keep this file 0600, give each device only its own line, never commit it.\n"
        + "".join(f"{user}:{password}\n" for user, password in passwords.items())
    )
