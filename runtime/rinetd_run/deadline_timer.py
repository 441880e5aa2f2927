"""The deadline sweep on the event loop: a tick each second, run only while some link is
watched, ends what ``deadlines`` finds past its deadline."""

from __future__ import annotations

import asyncio

from . import logline
from .deadlines import Deadlines
from .link import Link

__all__ = ["DeadlineTimer"]

TICK = 1.0  # seconds


class DeadlineTimer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.deadlines = Deadlines()
        self._tick: asyncio.TimerHandle | None = None
        # Per connection: the table's own methods, not a call through this one.
        self.connect_ended = self.deadlines.connect_ended
        self.forget = self.deadlines.forget

    def connect_started(self, link: Link, timeout: int) -> None:
        self.deadlines.connect_started(link, timeout, self.loop.time())
        self._arm()

    def watch_idle(self, link: Link, timeout: int) -> None:
        self.deadlines.watch_idle(link, timeout, self.loop.time())
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
        expired = self.deadlines.sweep(self.loop.time())
        for link in expired.connects:
            link.connect_expired()  # failing drops the connect under way
        for link in expired.idle:
            link.finish(abort=False, result=logline.IDLE_TIMEOUT)
        if self.deadlines.watching:
            self._arm()
