"""Shared helpers: paths, and running the real console scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
SCHEMA = ROOT / "schema" / "rules.schema.json"
BIN = Path(sys.executable).parent


def run(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one of our console scripts (``rinetdc ...``) as a user would."""
    command = [str(BIN / args[0]), *args[1:]]
    return subprocess.run(
        command,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
