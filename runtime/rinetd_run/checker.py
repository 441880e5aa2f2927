"""The health checker: a process of its own that runs the pools' active checks, so that
the forwarding loop spends nothing on them but reading their results.

rinetd-run (``checker_process``) starts it when a rule set has members to check and
writes it one JSON line on stdin at each (re)load: every member to check, and how
(``{"members": [{"pool", "host", "port", "address", "checks": {...}}, ...]}``).  A
member whose checks did not change keeps its place in the interval.  The checker
answers on stdout with at most one JSON line a tenth of a second, the results since
the last (``{"results": [[pool, host, port, passed, why, address], ...]}``).  States
(rise, fall, up, down) stay in rinetd-run, which marks members on failed connects too.

It exits when its stdin ends: rinetd-run stopped, or died.  SIGINT, SIGTERM and SIGHUP
are rinetd-run's to act on, not its own: Ctrl-C in a terminal, `kill` of the process
group or systemd's stop (which signals every process of the unit) reach both, and the
checker lives until rinetd-run lets it go (after its grace), never dying first and
being started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import signal
import sys
from dataclasses import dataclass
from typing import Any

from .health import Checks, check
from .names import getaddrinfo
from .say import say

__all__ = ["main"]

FLUSH = 0.1  # seconds results wait to be sent together
LINE_LIMIT = 1 << 26  # the longest members line read (a rule set of ~300,000 members)

Key = tuple[str, str, int]  # pool, member host as written, port


@dataclass(slots=True)
class _Target:
    host: str
    port: int
    address: str | None  # None until the name resolves


class Checker:
    """The checks under way, by member, and the results not yet sent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, out: int) -> None:
        self.loop = loop
        self.out = out
        self.targets: dict[Key, _Target] = {}
        self.tasks: dict[Key, tuple[Checks, asyncio.Task[None]]] = {}
        self.results: list[list[Any]] = []
        self._flush: asyncio.TimerHandle | None = None
        # One lookup of a name at a time whatever the checks' pace: a name server that
        # never answers holds one thread, not one a check.
        self._lookups: dict[str, asyncio.Future[list[Any]]] = {}
        self.ended = loop.create_future()  # set when stdout is gone

    def watch(self, members: list[dict[str, Any]]) -> None:
        """Check these members from now on, and no others."""
        wanted: dict[Key, tuple[_Target, Checks]] = {}
        for member in members:
            key = (member["pool"], member["host"], member["port"])
            target = _Target(member["host"], member["port"], member["address"])
            wanted[key] = (target, Checks(**member["checks"]))
        for key, (checks, task) in list(self.tasks.items()):
            if key not in wanted or wanted[key][1] != checks:
                task.cancel()
                del self.tasks[key]
        self.targets = {key: target for key, (target, _checks) in wanted.items()}
        for key, (_target, checks) in wanted.items():
            if key not in self.tasks:
                self.tasks[key] = (checks, self.loop.create_task(self._every(key, checks)))

    async def _every(self, key: Key, checks: Checks) -> None:
        # Members start at random points of the interval: 1,000 of them check in a steady
        # trickle, never in a burst of 1,000 connects.
        await asyncio.sleep(random.uniform(0, checks.interval))
        while True:
            target = self.targets[key]
            if target.address is None:
                await self._look_up(target, checks.timeout)
            if target.address is None:
                passed, why = False, f"{target.host} does not resolve"
            else:
                passed, why = await check(target.address, target.port, checks)
            self._said([*key, passed, why, target.address])
            await asyncio.sleep(checks.interval)

    async def _look_up(self, target: _Target, timeout: int) -> None:
        """A member whose name did not resolve: look it up again before its check, and
        take the first address found (as a load would)."""
        lookup = self._lookups.get(target.host)
        if lookup is None:
            lookup = getaddrinfo(self.loop, target.host)
            self._lookups[target.host] = lookup
            lookup.add_done_callback(functools.partial(self._looked_up, target.host))
        try:
            async with asyncio.timeout(timeout):
                found = await asyncio.shield(lookup)  # the lookup outlives a late check
        except (TimeoutError, OSError, UnicodeError):
            return
        if found:
            target.address = str(found[0][4][0])

    def _looked_up(self, host: str, lookup: asyncio.Future[list[Any]]) -> None:
        del self._lookups[host]
        if not lookup.cancelled():
            lookup.exception()  # taken here: the check that waited may have given up

    def _said(self, result: list[Any]) -> None:
        self.results.append(result)
        if self._flush is None:
            self._flush = self.loop.call_later(FLUSH, self.flush)

    def flush(self) -> None:
        self._flush = None
        line = json.dumps({"results": self.results}, separators=(",", ":")).encode() + b"\n"
        self.results = []
        view = memoryview(line)
        try:
            while view:  # a blocking pipe: rinetd-run reads it from its loop
                view = view[os.write(self.out, view) :]
        except OSError:  # rinetd-run is gone
            if not self.ended.done():
                self.ended.set_result(None)

    def close(self) -> None:
        for _checks, task in self.tasks.values():
            task.cancel()
        if self._flush is not None:
            self._flush.cancel()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    checker = Checker(loop, sys.stdout.fileno())
    try:
        while True:
            reading = asyncio.ensure_future(reader.readline())
            await asyncio.wait((reading, checker.ended), return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                return
            line = reading.result()
            if not line:
                return
            checker.watch(json.loads(line)["members"])
    except (ValueError, KeyError, TypeError) as error:  # not rinetd-run's own lines
        say(f"health checker: unreadable instructions on stdin ({error})")
        raise SystemExit(2) from None
    finally:
        checker.close()


def main() -> None:
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve())
