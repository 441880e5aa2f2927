"""The status file's I/O (``--status FILE``): written by the process that takes SIGHUP
when it starts forwarding, when a reload begins and when it ends; read by
``rinetd-run --reload``.  Each write replaces the whole file (a new file renamed over
the old), so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import replace

from .notify import notify
from .status import MAX_BYTES, Outcome, Status, decode, encode

__all__ = ["Announcer", "StatusFile", "read"]


def read(path: str) -> Status | None:
    """The status in the file at ``path``; None if there is none of ours there."""
    try:
        # Not blocking: a FIFO put in its place must not hang the reader.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                return None
            data = file.read(MAX_BYTES + 1)
        except OSError:
            return None
    return decode(data) if len(data) <= MAX_BYTES else None


class StatusFile:
    """The writer, in the process that takes SIGHUP; does nothing without a path."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.status = Status(os.getpid(), 0, 0, True, "")

    def started(self, message: str) -> None:
        """Forwarding has begun; raises OSError when the file cannot be written, which
        is said at start like a log that cannot be opened."""
        self.status = Status(os.getpid(), 0, 0, True, message)
        self._write(must=True)

    def began(self) -> None:
        self.status = replace(self.status, began=self.status.began + 1)
        self._write()

    def ended(self, outcome: Outcome) -> None:
        status = self.status
        self.status = replace(status, ended=status.began, ok=outcome.ok, message=outcome.message)
        self._write()

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def _write(self, must: bool = False) -> None:
        if self.path is None:
            return
        folder = os.path.dirname(self.path) or "."
        try:
            descriptor, temporary = tempfile.mkstemp(prefix=".status-", dir=folder)
            try:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(encode(self.status))
                os.chmod(temporary, 0o644)
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError:
            # A reload goes on without its status: the waiting side says it had no
            # answer.  Only the first write, at start, is a reason to stop.
            if must:
                raise


class Announcer:
    """How each reload begins and ends, told by the process that takes SIGHUP (the only
    one, or the supervisor): to its status file, and to systemd as its status line."""

    def __init__(self, status: StatusFile) -> None:
        self.status = status

    def began(self) -> None:
        self.status.began()

    def ended(self, outcome: Outcome) -> None:
        self.status.ended(outcome)
        notify(f"STATUS={outcome.message}")
