"""Password hashing off the event loop, in a small pool with a bounded queue and a rate cap.

Why: an argon2 verification costs tens of milliseconds of CPU and ~19 MiB of memory on purpose.
Run on the event loop it stalls every request; run in the shared request threadpool, 64 parallel
logins take every thread and /healthz waits behind them, and 64 hashes at once cost 64 × their
memory. Here at most `workers` hashes run at a time, at most `queue` more wait, and at most
`per_second` start each second (a token bucket holding one second's worth), so password checks
take at most a bounded share of a core from the gateway in the same process (argon2 releases the
interpreter lock while it hashes, but a core it uses is a core the gateway does not get). A login
past any bound is refused at once (`PoolBusy` → 429 with Retry-After: 1), never queued.

The rate cap uses the machine's monotonic time, not the app clock: it paces CPU, it is not a rule.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class PoolBusy(RuntimeError):
    """Every worker is busy and the queue is full, or this second's hashes are spent: try again soon."""


class HashPool:
    def __init__(
        self,
        workers: int = 1,
        queue: int = 16,
        per_second: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1 or queue < 0 or (per_second is not None and per_second <= 0):
            raise ValueError("a hash pool needs a worker, a queue of zero or more and a positive rate cap")
        self.capacity = workers + queue
        self._in_use = 0
        self._rate = per_second
        self._burst = max(1.0, per_second or 1.0)
        self._tokens = self._burst
        self._monotonic = monotonic
        self._refilled = monotonic()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="password-hash")

    def _tokens_now(self) -> float:
        if self._rate is None:
            return self._burst
        return min(self._burst, self._tokens + (self._monotonic() - self._refilled) * self._rate)

    @property
    def busy(self) -> bool:
        """True when a submission now would be refused: lets a caller refuse before doing other work."""
        return self._in_use >= self.capacity or self._tokens_now() < 1  # racy reads: try_submit decides

    def try_submit(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """Schedule `fn(*args)` on the pool; raises PoolBusy at once when a bound is reached."""
        with self._lock:
            tokens = self._tokens_now()
            if self._in_use >= self.capacity or tokens < 1:
                raise PoolBusy("too many logins are being checked right now: try again in a second")
            self._tokens, self._refilled = tokens - 1, self._monotonic()
            self._in_use += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _f: self._release())
        return asyncio.wrap_future(future)

    def _release(self) -> None:
        with self._lock:
            self._in_use -= 1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await self.try_submit(fn, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
