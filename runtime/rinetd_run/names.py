"""Connect host names while forwarding, on the event loop: the lookups and timers that
``name_table`` asks for.

Every address a name has is looked up again every `dns-refresh` seconds (and after
three failed connects in a row), off the event loop and never twice at once for one
name.  Connections open keep their address; only new connects read the new ones.
With `dns-refresh 0` a name is looked up at start and at each reload only, as rinetd
0.73 does (its other addresses are still known, so a refused connect tries the next
one).  Bind host names are never looked up again: the listening socket stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from .name_table import Key, NameTable
from .ruleset import RuleSet
from .say import say

__all__ = ["Names", "getaddrinfo"]


class Names:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.table = NameTable()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Per connection: the table's own methods, not a call through this one.
        self.of = self.table.of  # the addresses to connect to, first one first
        self.connected = self.table.connected
        # Told when a lookup changed a name's addresses (the kernel's table and the
        # pools' health checks follow).
        self.on_change: list[Callable[[], None]] = []

    def plan(self, ruleset: RuleSet) -> None:
        """The names of a rule set just (re)loaded: the address its load found, and every
        address soon; then looked up again as each rule's dns-refresh says."""
        self.close()
        for key in self.table.plan(ruleset):
            self.look_up(key)

    def failed(self, host: str, refresh: int) -> None:
        if self.table.failed(host, refresh):
            self.look_up((host, refresh))

    def look_up(self, key: Key) -> None:
        """Start a lookup of a name unless one is under way."""
        if not self.table.start(key):
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        task = self.loop.create_task(self._look_up(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _look_up(self, key: Key) -> None:
        host, every = key
        try:
            found = await getaddrinfo(self.loop, host)
            addresses, error = tuple(dict.fromkeys(str(entry[4][0]) for entry in found)), None
        except (OSError, UnicodeError) as problem:
            addresses, error = (), str(problem)
        before = self.table.addresses.get(key)
        line = self.table.settled(key, addresses, error)
        if line is not None:
            say(line)
        if self.table.addresses.get(key) != before:
            for listener in self.on_change:
                listener()
        if every and key in self.table.addresses:
            self._timers[key] = self.loop.call_later(every, self.look_up, key)

    def close(self) -> None:
        """Stop every timer and lookup (a reload's ``plan`` starts them anew)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()


def getaddrinfo(loop: asyncio.AbstractEventLoop, host: str) -> asyncio.Future[list[Any]]:
    """``getaddrinfo`` in a daemon thread of its own: a resolver that never answers holds
    that thread only, never a pool a reload or the exit waits for (asyncio's default
    pool is joined at exit: a stop took as long as the lookups under way)."""
    future: asyncio.Future[list[Any]] = loop.create_future()

    def settle(result: list[Any] | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or [])

    def run() -> None:
        try:
            found: list[Any] | None = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            problem: BaseException | None = None
        except (OSError, UnicodeError) as error:
            found, problem = None, error
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, found, problem)

    threading.Thread(target=run, name="rinetd-lookup", daemon=True).start()
    return future
