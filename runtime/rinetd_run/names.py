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
import ipaddress
import socket

from .ruleset import RuleSet, effective
from .say import say

__all__ = ["FAILURES_BEFORE_LOOKUP", "Names", "is_name"]

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
        self.addresses: dict[str, tuple[str, ...]] = {}  # name -> its addresses, in order
        self.every: dict[str, int] = {}  # name -> seconds between lookups; 0: reload only
        self._busy: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._failing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def plan(self, ruleset: RuleSet) -> None:
        """The names of a rule set just (re)loaded: the address its load found, and every
        address soon; then looked up again as each rule's dns-refresh says (the shortest
        wins for a name several rules use)."""
        self.close()
        every: dict[str, int] = {}
        addresses: dict[str, tuple[str, ...]] = {}
        for rule in ruleset.rules:
            host = rule.connect.host
            if not is_name(host) or rule.connect.address is None:
                continue
            refresh = effective(ruleset, rule).dns_refresh
            known = every.get(host)
            every[host] = refresh if known is None else _shortest(known, refresh)
            addresses.setdefault(host, (rule.connect.address,))
        self.every, self.addresses = every, addresses
        for host in every:
            self.look_up(host)

    def of(self, host: str, address: str) -> tuple[str, ...]:
        """The addresses to connect to for a rule's connect host, first one first."""
        return self.addresses.get(host) or (address,)

    def connected(self, host: str) -> None:
        self._failures.pop(host, None)

    def failed(self, host: str) -> None:
        """A connect to ``host`` failed; the third in a row looks the name up again now."""
        if not self.every.get(host):
            return
        count = self._failures.get(host, 0) + 1
        self._failures[host] = count
        if count >= FAILURES_BEFORE_LOOKUP:
            self._failures.pop(host, None)
            self.look_up(host)

    def look_up(self, host: str) -> None:
        """Start a lookup of ``host`` unless one is under way."""
        if host in self._busy or host not in self.every:
            return
        self._busy.add(host)
        timer = self._timers.pop(host, None)
        if timer is not None:
            timer.cancel()
        task = self.loop.create_task(self._look_up(host))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _look_up(self, host: str) -> None:
        try:
            found = await self.loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            addresses = tuple(dict.fromkeys(str(entry[4][0]) for entry in found))
            error = None if addresses else "no address"
        except (OSError, UnicodeError) as problem:
            addresses, error = (), str(problem)
        finally:
            self._busy.discard(host)
        if host not in self.every:  # the name left the rule set meanwhile
            return
        if error is not None:
            if host not in self._failing:
                self._failing.add(host)
                kept = " ".join(self.addresses.get(host, ())) or "none"
                say(f"cannot resolve {host}: {error}; new connections keep going to {kept}")
        else:
            if host in self._failing:
                self._failing.discard(host)
                say(f"{host} resolves again: {' '.join(addresses)}")
            self.addresses[host] = addresses
        if self.every[host]:
            self._timers[host] = self.loop.call_later(self.every[host], self.look_up, host)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()


def _shortest(one: int, other: int) -> int:
    """The shorter of two refresh periods, where 0 means never."""
    if not one or not other:
        return one or other
    return min(one, other)
