"""Progress lines for the bench."""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the figures."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
