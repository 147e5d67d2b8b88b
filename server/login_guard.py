"""Failed-login limits per user name and per client address, with a lockout that doubles.

Why in memory: one API process answers logins (`patrol api` or `patrol serve`); a restart forgets
the counts, which costs an attacker nothing it did not already have (each try still costs a hash).
Several API processes behind a balancer would each keep their own counts: the limits then hold per
process. Memory is bounded: at most `max_keys` names and `max_keys` addresses are tracked; the
least recently failed is forgotten first.

The rule, for each key (a user name, a client address): the `lock_after`-th failure in a row locks
the key for `base_s`, each further one for twice as long as the last, up to `max_s`. While a key is
locked every login that carries it is refused at once (429 with Retry-After), the right password
included, and without hashing. A key's count is forgotten `forget_s` after its last failure; a
successful login forgets the user name's count (not the address's: one valid account must not
reset an address that is guessing other accounts' passwords). Logins let in before a lockout
began that fail while it runs are not counted again, so a burst of parallel guesses doubles the
lockout once, not once per guess.

Times are the app clock's `monotonic()` seconds, passed in, so tests move time by hand.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """One kind of key's rule: the `lock_after`-th failure starts the first lockout."""

    lock_after: int
    base_s: float = 1.0
    max_s: float = 900.0
    forget_s: float = 3600.0
    max_keys: int = 10_000

    def lockout_s(self, failures: int) -> float:
        """How long the `failures`-th failure locks the key: 0 before `lock_after`, then doubling."""
        over = failures - self.lock_after
        if over < 0:
            return 0.0
        return min(self.base_s * 2 ** min(over, 40), self.max_s)


@dataclass
class _Record:
    failures: int
    last_failure: float
    locked_until: float


class FailureCounter:
    """Failures and lockouts of one kind of key, least recently failed forgotten first."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def _current(self, key: str, now: float) -> _Record | None:
        record = self._records.get(key)
        if record is not None and now - record.last_failure >= self.limits.forget_s:
            del self._records[key]
            return None
        return record

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        record = self._current(key, now)
        return max(0.0, record.locked_until - now) if record else 0.0

    def failed(self, key: str, now: float) -> float:
        """Count a failure; returns the lockout it starts (0 before `lock_after`)."""
        record = self._current(key, now)
        if record is not None and now < record.locked_until:
            # a login let in before the lockout began, failing now: the lockout it earned is running
            return 0.0
        if record is None:
            record = _Record(0, now, now)
            self._records[key] = record
            while len(self._records) > self.limits.max_keys:
                self._records.popitem(last=False)
        record.failures += 1
        record.last_failure = now
        self._records.move_to_end(key)
        lockout = self.limits.lockout_s(record.failures)
        record.locked_until = now + lockout
        return lockout

    def forget(self, key: str) -> None:
        self._records.pop(key, None)


class LoginGuard:
    """The two counters a login goes through: its user name and its client address."""

    def __init__(self, per_user: Limits, per_address: Limits) -> None:
        self.users = FailureCounter(per_user)
        self.addresses = FailureCounter(per_address)

    @staticmethod
    def _user_key(username: str) -> str:
        return username[:64]  # user names are at most 64 characters; longer ones share a key

    def retry_after(self, username: str, address: str, now: float) -> int:
        """Whole seconds to wait before this login may be tried (0: go ahead)."""
        wait = max(self.users.retry_after(self._user_key(username), now), self.addresses.retry_after(address, now))
        return math.ceil(wait)

    def failed(self, username: str, address: str, now: float) -> int:
        """Count a wrong password; whole seconds of the lockout it starts, 0 if none."""
        wait = max(self.users.failed(self._user_key(username), now), self.addresses.failed(address, now))
        return math.ceil(wait)

    def succeeded(self, username: str) -> None:
        self.users.forget(self._user_key(username))
