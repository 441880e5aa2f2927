"""Connect and idle timeouts, checked once a second rather than timed per connection.

The hot path only puts a link in a dict (and takes it out when its connect
ends); a tick each second, run only while some link is watched, ends the
connects past ``connect-timeout`` and the links whose byte counts have not
moved for ``idle-timeout`` seconds.  Both are whole seconds, so a second of
slack is what the settings mean.
"""

from __future__ import annotations

import asyncio

from . import logline
from .link import Link

__all__ = ["Deadlines"]

TICK = 1.0  # seconds


class Deadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connecting: dict[Link, float] = {}  # link -> when its connect gives up
        self.idle: dict[Link, list[float]] = {}  # link -> [timeout, byte count, since]
        self._tick: asyncio.TimerHandle | None = None

    def connect_started(self, link: Link, timeout: int) -> None:
        self.connecting[link] = self.loop.time() + timeout
        self._arm()

    def connect_ended(self, link: Link) -> None:
        self.connecting.pop(link, None)

    def forget(self, link: Link) -> None:
        """A link that ended: no longer watched for idleness."""
        self.idle.pop(link, None)

    def watch_idle(self, link: Link, timeout: int) -> None:
        self.idle[link] = [timeout, -1, self.loop.time()]
        self._arm()

    def close(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _arm(self) -> None:
        if self._tick is None:
            self._tick = self.loop.call_later(TICK, self._check)

    def _check(self) -> None:
        self._tick = None
        now = self.loop.time()
        for link, deadline in list(self.connecting.items()):
            if link.finished or link.backend is not None:
                del self.connecting[link]
            elif deadline <= now:
                del self.connecting[link]
                # Logged as a backend that refused; finishing drops the connect under way.
                link.backend_failed()
        for link, watched in list(self.idle.items()):
            if link.finished:
                del self.idle[link]
                continue
            moved = link.bytes_from_client + link.bytes_to_client
            if moved != watched[1]:
                watched[1], watched[2] = moved, now
            elif now - watched[2] >= watched[0]:
                del self.idle[link]
                link.finish(abort=False, result=logline.IDLE_TIMEOUT)
        if self.connecting or self.idle:
            self._arm()
