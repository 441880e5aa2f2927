"""Accepting TCP connections: in batches, straight to a callback, backing off when the
process runs out of file descriptors or its budget says so.

asyncio's own server (3.11) keeps retrying ``accept`` after EMFILE within one
wake-up and schedules a retry for each failure, which ends in a busy loop, as
rinetd 0.73 has.  Here one failure pauses accepting for ``BACKOFF`` seconds.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from .logline import RESOURCE_ERRORS

__all__ = ["Acceptor"]

BATCH = 64  # connections taken per wake-up, so one busy listener cannot starve the rest
BACKOFF = 1.0  # seconds without accepting after EMFILE/ENFILE
BUDGET_PAUSE = 0.1  # seconds without accepting while the descriptor budget is spent


class Acceptor:
    def __init__(
        self,
        sock: socket.socket,
        on_connection: Callable[[socket.socket, Any], None],
        on_failure: Callable[[OSError], None],
        may_accept: Callable[[], bool],
    ) -> None:
        self.sock = sock
        self.on_connection = on_connection
        self.on_failure = on_failure
        self.may_accept = may_accept
        self.loop = asyncio.get_running_loop()
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False

    def start(self, backlog: int) -> None:
        self.sock.listen(backlog)
        self.loop.add_reader(self.sock.fileno(), self._ready)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            self.loop.add_reader(self.sock.fileno(), self._ready)

    def _pause(self, seconds: float) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self._retry = self.loop.call_later(seconds, self._resume)

    def _ready(self) -> None:
        for _ in range(BATCH):
            if not self.may_accept():
                self._pause(BUDGET_PAUSE)  # the clients wait in the backlog
                return
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                self.on_failure(error)
                if error.errno in RESOURCE_ERRORS:
                    self._pause(BACKOFF)
                return
            conn.setblocking(False)
            self.on_connection(conn, address)
