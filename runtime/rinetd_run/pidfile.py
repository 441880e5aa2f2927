"""The pid file: written once forwarding has started, removed at exit.

One piece for the single process and for the ``--workers`` supervisor, so
both behave alike: a pid file that cannot be written is said on stderr and
forwarding goes on (0.73 goes on without one too).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .say import say

__all__ = ["pidfile"]


@contextlib.contextmanager
def pidfile(path: str | None) -> Iterator[None]:
    """Hold ``path`` with this process's pid while the block runs (nothing if None)."""
    written = False
    if path:
        try:
            with open(path, "w", encoding="ascii") as handle:
                handle.write(f"{os.getpid()}\n")
            written = True
        except OSError as error:
            say(f"cannot write pid file {path}: {error.strerror or error}")
    try:
        yield
    finally:
        if written and path:
            with contextlib.suppress(OSError):
                os.unlink(path)
