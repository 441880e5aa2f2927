"""The decisions of dns-refresh, pure: which names to look up, when, and what to say.

A name is a connect host as the rules that use it want it: with its lookup period
(0: at start and reload only), so a rule without dns-refresh keeps its addresses
while another rule's name is refreshed.  The table keeps every address a name has,
first one first; a lookup that fails keeps the last good addresses and is said
once, and once more when the name resolves again; three failed connects in a row
ask for a lookup now; one lookup at a time per name.  ``names`` runs the lookups
and the timers; nothing here waits or looks anything up.
"""

from __future__ import annotations

import ipaddress

from .ruleset import RuleSet, effective

__all__ = ["FAILURES_BEFORE_LOOKUP", "Key", "NameTable", "is_name"]

Key = tuple[str, int]  # (host, dns-refresh period)

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


class NameTable:
    def __init__(self) -> None:
        self.addresses: dict[Key, tuple[str, ...]] = {}  # its addresses, in order
        self.busy: set[Key] = set()  # a lookup is under way
        self._failing: set[Key] = set()  # its last lookup failed (said once)
        self._failures: dict[Key, int] = {}  # failed connects in a row

    def plan(self, ruleset: RuleSet) -> list[Key]:
        """The names of a rule set just (re)loaded, each with the address its load found;
        returns them all, to be looked up for every address soon."""
        addresses: dict[Key, tuple[str, ...]] = {}
        for rule in ruleset.rules:
            connects = [(rule.connect.host, rule.connect.address)]
            if rule.pool is not None:  # a pool's members, with the rule's dns-refresh
                connects = [(m.host, m.address) for m in ruleset.pool(rule.pool).members]
            for host, address in connects:
                if is_name(host) and address is not None:
                    key = (host, effective(ruleset, rule).dns_refresh)
                    addresses.setdefault(key, (address,))
        self.addresses = addresses
        self.busy.clear()  # the driver cancelled the lookups under way
        return list(addresses)

    def of(self, host: str, refresh: int, address: str) -> tuple[str, ...]:
        """The addresses to connect to for a rule's connect host, first one first."""
        return self.addresses.get((host, refresh)) or (address,)

    def connected(self, host: str, refresh: int) -> None:
        self._failures.pop((host, refresh), None)

    def failed(self, host: str, refresh: int) -> bool:
        """A connect to ``host`` failed: whether to look the name up now (with
        dns-refresh, the third failure in a row)."""
        key = (host, refresh)
        if not refresh or key not in self.addresses:
            return False
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if count < FAILURES_BEFORE_LOOKUP:
            return False
        self._failures.pop(key, None)
        return True

    def start(self, key: Key) -> bool:
        """Whether a lookup of ``key`` may start now (it is then under way)."""
        if key in self.busy or key not in self.addresses:
            return False
        self.busy.add(key)
        return True

    def settled(self, key: Key, addresses: tuple[str, ...], error: str | None) -> str | None:
        """A lookup ended with ``addresses`` or ``error``: the table takes good addresses
        and keeps the last ones otherwise.  Returns the line to say, if any."""
        self.busy.discard(key)
        if key not in self.addresses:  # the name left the rule set meanwhile
            return None
        host = key[0]
        if error is not None or not addresses:
            if key in self._failing:
                return None
            self._failing.add(key)
            kept = " ".join(self.addresses[key])
            why = error or "no address"
            return f"cannot resolve {host}: {why}; new connections keep going to {kept}"
        self.addresses[key] = addresses
        if key in self._failing:
            self._failing.discard(key)
            return f"{host} resolves again: {' '.join(addresses)}"
        return None
