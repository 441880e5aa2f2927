"""splice(2) between two TCP sockets through one pipe per process.

The pipe is empty between any two callbacks of the loop (what the receiving
side cannot take at once is read back out into its pending buffer), so every
connection of the process shares it and none holds descriptors for it.
``RINETD_RUN_NO_SPLICE=1`` turns splicing off.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

__all__ = ["ENABLED", "FLAGS", "SIZE", "pipe", "read_all"]

ENABLED = hasattr(os, "splice") and not os.environ.get("RINETD_RUN_NO_SPLICE")
FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
# Bytes moved per splice, and the pipe's size: 1 MiB (Linux's default
# pipe-max-size) took a tenth more through four streams than 256 KiB did.
SIZE = 1024 * 1024

_pipe: tuple[int, int] | None = None


def pipe() -> tuple[int, int]:
    """The process's pipe (read end, write end), made on first use."""
    global _pipe
    if _pipe is None:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, SIZE)
        _pipe = (read_end, write_end)
    return _pipe


def _forget_pipe() -> None:
    global _pipe
    _pipe = None  # --workers forks: two processes must never share one pipe


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pipe)


def read_all(read_end: int, count: int) -> bytes:
    """Exactly ``count`` bytes from the pipe (they are there: a splice put them in)."""
    chunks = []
    while count:
        chunk = os.read(read_end, count)
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)
