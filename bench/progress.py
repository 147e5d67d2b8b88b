"""Progress lines and the work directory of a bench run."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the figures."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def work_dir(prefix: str, keep: bool) -> Iterator[Path]:
    """A temp directory for logs and files of one run: removed at the end unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            log(f"work dir kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)
