"""The log file writer: appends lines off the event loop, loses none on exit.

A slow disk must not stall forwarding, so lines go to one writer thread. They
go in batches: the lines logged during one turn of the event loop are handed
over together, and the writer takes all that is waiting, writes it with one
``write`` on a file opened for appending (so the lines of ``--workers``
processes sharing one log never interleave), then lets lines gather for
``GATHER`` seconds. A line at a time (a thread wake-up, an interpreter-lock
hand-over and a write each) took a fifth of the forwarder's time under a
churn of short connections. ``reconfigure`` (on SIGHUP, for rotation) and
``close`` (at exit) are ordered with the lines: everything logged before them
is written first.

A log that is a stream (``logfile -`` on a pipe or the journal, a FIFO) is
written as ``outlet`` says: never waiting, whole lines of at most PIPE_BUF per
write; lines its reader does not take are dropped and counted, as on a full
disk.  At most ``MAX_QUEUED`` lines wait for the writer (a disk that hangs):
past that, new lines are dropped and counted.  ``close`` waits for the writer
at most ``CLOSE_WAIT`` seconds, so a stop never hangs on the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable

from .logline import Event, common_line, json_line, tab_line
from .outlet import Outlet
from .say import say

__all__ = ["LogWriter"]

_CLOSE = object()
GATHER = 0.01  # seconds the writer waits after a write, so lines come in batches
MAX_QUEUED = 100_000  # lines handed over and not yet written (~10-30 MB)
CLOSE_WAIT = 5.0  # seconds a stop waits for the log to be written
_FORMATS: dict[str, Callable[[time.struct_time, Event], str]] = {
    "tab": tab_line,
    "common": common_line,
    "json": json_line,
}
STDOUT = "-"  # `logfile -`: the lines go to standard output (the journal, under systemd)


class LogWriter:
    def __init__(self, path: str | None, style: str) -> None:
        self._path = path
        self._format = _FORMATS[style]
        self._loop = asyncio.get_running_loop()
        self._batch: list[str] = []
        self._second = -1
        self._when = time.localtime()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._dropped = 0  # lines not written since the log last took a write
        self._given = 0  # lines handed to the writer (the loop's count)
        self._taken = 0  # lines the writer has taken (the writer's count)
        self._refused = 0  # lines the loop dropped because too many were waiting
        self._file: Outlet | None = self._open(path) if path else None
        self._thread = threading.Thread(target=self._run, name="rinetd-log", daemon=True)
        self._thread.start()

    @staticmethod
    def _open(path: str) -> Outlet:
        if path == STDOUT:
            return Outlet(1)
        # Non-blocking: opening a FIFO nobody reads fails at once instead of waiting.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
        return Outlet(os.open(path, flags, 0o644), owned=True)

    def log(self, event: Event) -> None:
        if self._path is None:
            return
        now = int(time.time())
        if now != self._second:  # local time changes once a second: ask for it once
            self._second, self._when = now, time.localtime(now)
        if not self._batch:
            self._loop.call_soon(self._hand_over)
        self._batch.append(self._format(self._when, event))

    def note(self, line: str) -> None:
        """A line of its own (a pool member's change of state), in a JSON log only: the
        tab and common formats keep rinetd's lines alone, so their readers are not
        surprised."""
        if self._path is None or self._format is not json_line:
            return
        if not self._batch:
            self._loop.call_soon(self._hand_over)
        self._batch.append(line + "\n")

    def _hand_over(self) -> None:
        if not self._batch:
            return
        if self._given - self._taken + len(self._batch) > MAX_QUEUED:
            if not self._refused:
                say(f"the log writer is {MAX_QUEUED} lines behind; dropping lines until it is not")
            self._refused += len(self._batch)
        else:
            if self._refused:
                say(f"the log writer caught up: {self._refused} lines were dropped meanwhile")
                self._refused = 0
            self._given += len(self._batch)
            self._queue.put(self._batch)
        self._batch = []

    def reconfigure(self, path: str | None, style: str) -> None:
        """Switch file and format (``style``: tab, common or json); the file is reopened
        even if its name is unchanged."""
        self._hand_over()
        self._format = _FORMATS[style]
        self._path = path
        self._queue.put((path,))

    def close(self) -> None:
        self._hand_over()
        self._queue.put(_CLOSE)
        self._thread.join(CLOSE_WAIT)  # a log that hangs (a dead NFS) does not hold the exit

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            lines: list[str] = []
            while True:  # everything queued by now, in order, in one write
                if isinstance(item, list):
                    lines += item
                    self._taken += len(item)
                else:
                    self._write(lines)
                    lines = []
                    if item is _CLOSE:
                        self._swap(None)
                        return
                    assert isinstance(item, tuple)
                    self._swap(item[0])
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(lines)
            # Let lines gather: each wake-up of this thread costs the event
            # loop a hand-over of the interpreter lock.
            time.sleep(GATHER)

    def _write(self, lines: list[str]) -> None:
        """Append ``lines``, whole lines or nothing: a full disk leaves no half line for the
        next to be glued to. What cannot be written is counted, and said once the log
        can be written again."""
        if not lines or self._file is None:
            return
        data = "".join(lines).encode()
        written, error = self._file.write(data)
        if error is None:
            if self._dropped:
                say(f"log writable again: {self._dropped} lines were dropped meanwhile")
                self._dropped = 0
            return
        whole = data.rfind(b"\n", 0, written) + 1
        if whole < written and not self._file.stream:
            _cut(self._file.fd, written - whole)
        if not self._dropped:
            why = "nobody reads it" if isinstance(error, BlockingIOError) else error.strerror
            say(f"cannot write the log: {why or error}; dropping lines until it can")
        self._dropped += data.count(b"\n", whole)

    def _swap(self, path: str | None) -> None:
        if self._file:
            self._file.close()
            self._file = None
        if path:
            try:
                self._file = self._open(path)
            except OSError as error:
                say(f"cannot open log {path}: {error}")


def _cut(fd: int, tail: int) -> None:
    """Take back the last ``tail`` bytes this process appended (a part of a line), unless
    another process has appended since: then the part stays rather than their lines."""
    with contextlib.suppress(OSError):
        end = os.lseek(fd, 0, os.SEEK_CUR)
        if os.fstat(fd).st_size == end:
            os.ftruncate(fd, end - tail)
