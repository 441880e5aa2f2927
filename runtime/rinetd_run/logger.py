"""The log file writer: appends lines off the event loop, loses none on exit.

A slow disk must not stall forwarding, so lines go through a queue to one
writer thread.  ``reopen`` (on SIGHUP, for rotation) and ``close`` (at exit)
are ordered with the lines: everything logged before them is written first.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TextIO

from .logline import Event, common_line, tab_line
from .say import say

__all__ = ["LogWriter"]

_REOPEN = object()
_CLOSE = object()


class LogWriter:
    def __init__(self, path: str | None, common: bool) -> None:
        self._path = path
        self._format: Callable[[time.struct_time, Event], str] = common_line if common else tab_line
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._file: TextIO | None = self._open(path) if path else None
        self._thread = threading.Thread(target=self._run, name="rinetd-log", daemon=True)
        self._thread.start()

    @staticmethod
    def _open(path: str) -> TextIO:
        return open(path, "a", encoding="utf-8", buffering=1)

    def log(self, event: Event) -> None:
        if self._path is not None:
            self._queue.put(self._format(time.localtime(), event))

    def reconfigure(self, path: str | None, common: bool) -> None:
        """Switch file and format; the file is reopened even if its name is unchanged."""
        self._format = common_line if common else tab_line
        self._path = path
        self._queue.put((_REOPEN, path))

    def close(self) -> None:
        self._queue.put(_CLOSE)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _CLOSE:
                if self._file:
                    self._file.close()
                return
            if isinstance(item, tuple):
                self._swap(item[1])
                continue
            if self._file is not None:
                try:
                    self._file.write(str(item))
                except OSError as error:
                    say(f"cannot write the log: {error}")

    def _swap(self, path: str | None) -> None:
        if self._file:
            self._file.close()
            self._file = None
        if path:
            try:
                self._file = self._open(path)
            except OSError as error:
                say(f"cannot open log {path}: {error}")
