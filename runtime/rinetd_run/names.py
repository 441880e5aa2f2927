"""Connect host names while forwarding: every address a name has, looked up again every
`dns-refresh` seconds (and after three failed connects in a row), off the event loop
and never twice at once for one name.

A lookup that fails keeps the last good addresses: stderr says so once, and once
when the name resolves again.  Connections open keep their address; only new
connects read the new ones.  With `dns-refresh 0` a name is looked up at start
and at each reload only, as rinetd 0.73 does (its other addresses are still
known, so a refused connect tries the next one).  Bind host names are never
looked up again: the listening socket stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from typing import Any

from .ruleset import RuleSet, effective
from .say import say

__all__ = ["FAILURES_BEFORE_LOOKUP", "Names", "is_name"]

# A name as the rules that use it want it: with its lookup period (0: reload only), so
# a rule without dns-refresh keeps its addresses even while another rule's refresh.
Key = tuple[str, int]

FAILURES_BEFORE_LOOKUP = 3  # failed connects in a row to a name (as rinetd-uv)


def is_name(host: str) -> bool:
    """A host name, as opposed to a numeric address or rinetd's `0`."""
    if host == "0":
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


class Names:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.addresses: dict[Key, tuple[str, ...]] = {}  # its addresses, in order
        self._busy: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failing: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def plan(self, ruleset: RuleSet) -> None:
        """The names of a rule set just (re)loaded: the address its load found, and every
        address soon; then looked up again as each rule's dns-refresh says."""
        self.close()
        addresses: dict[Key, tuple[str, ...]] = {}
        for rule in ruleset.rules:
            host = rule.connect.host
            if is_name(host) and rule.connect.address is not None:
                key = (host, effective(ruleset, rule).dns_refresh)
                addresses.setdefault(key, (rule.connect.address,))
        self.addresses = addresses
        for key in addresses:
            self.look_up(key)

    def of(self, host: str, refresh: int, address: str) -> tuple[str, ...]:
        """The addresses to connect to for a rule's connect host, first one first."""
        return self.addresses.get((host, refresh)) or (address,)

    def connected(self, host: str, refresh: int) -> None:
        self._failures.pop((host, refresh), None)

    def failed(self, host: str, refresh: int) -> None:
        """A connect to ``host`` failed; with dns-refresh, the third in a row looks the
        name up again now."""
        key = (host, refresh)
        if not refresh or key not in self.addresses:
            return
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if count >= FAILURES_BEFORE_LOOKUP:
            self._failures.pop(key, None)
            self.look_up(key)

    def look_up(self, key: Key) -> None:
        """Start a lookup of a name unless one is under way."""
        if key in self._busy or key not in self.addresses:
            return
        self._busy.add(key)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        task = self.loop.create_task(self._look_up(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _look_up(self, key: Key) -> None:
        host, every = key
        try:
            found = await _getaddrinfo(self.loop, host)
            addresses = tuple(dict.fromkeys(str(entry[4][0]) for entry in found))
            error = None if addresses else "no address"
        except (OSError, UnicodeError) as problem:
            addresses, error = (), str(problem)
        finally:
            self._busy.discard(key)
        if key not in self.addresses:  # the name left the rule set meanwhile
            return
        if error is not None:
            if key not in self._failing:
                self._failing.add(key)
                kept = " ".join(self.addresses[key])
                say(f"cannot resolve {host}: {error}; new connections keep going to {kept}")
        else:
            if key in self._failing:
                self._failing.discard(key)
                say(f"{host} resolves again: {' '.join(addresses)}")
            self.addresses[key] = addresses
        if every:
            self._timers[key] = self.loop.call_later(every, self.look_up, key)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()


def _getaddrinfo(loop: asyncio.AbstractEventLoop, host: str) -> asyncio.Future[list[Any]]:
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
