"""Stopping the child processes the tests start."""

from __future__ import annotations

import subprocess


def stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """As an operator would: SIGTERM (a clean exit, what it holds flushed), SIGKILL after `grace_s`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace_s)
