"""Imports run one way only: app -> gateway | server | devices -> storage -> core.

The layers (docs/architecture.md) keep the core pure: it imports no database, MQTT, HTTP, broker or metrics
framework and nothing else from the project, so the rules in it are tested without a broker or a
database. storage knows no edge framework, and the three edges (gateway, server, devices) never
import each other, so each can change or be deployed without the others.

The contracts are in pyproject.toml ([tool.importlinter]). They count every import: inside
functions and under `if TYPE_CHECKING:` as well, and indirect ones (a -> b -> c counts as a -> c).
This runs them with import-linter in a child process (its CLI sets up logging and sys.path for
itself, which must not leak into the test session) and, when one is broken, fails with its report,
which names each import that runs the wrong way and its line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Named so that a contract dropped from pyproject.toml fails here instead of going unchecked.
CONTRACTS = ("layers", "core-pure", "storage-no-edges")

# What the `lint-imports` script runs, started with this interpreter so the venv's import-linter is used.
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def test_imports_follow_the_layers() -> None:
    command = [
        sys.executable,
        "-c",
        LINT_IMPORTS,
        "--no-cache",  # no .import_linter_cache/ in the work tree, and never a stale graph
        "--no-logo",
        *(f"--contract={contract}" for contract in CONTRACTS),
        str(REPO / "pyproject.toml"),
    ]
    # The CLI puts its working directory first on sys.path, so the packages of this tree are analysed.
    result = subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    report = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        pytest.fail(f"import-linter: layer contracts not kept (exit {result.returncode})\n\n{report}", pytrace=False)
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in report, report
