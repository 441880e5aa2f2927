"""Connection limits of one rule: its open connections, in all and per client address.
Pure counting; ``context`` asks before a link opens and tells when it ends.

A client is its address: an IPv4 client of a ``::`` listener counts as its plain
IPv4 address, so one host is one client whichever listener it reached.
"""

from __future__ import annotations

__all__ = ["RuleLimits", "client_key"]

_MAPPED = "::ffff:"


def client_key(address: str) -> str:
    """The address a limit counts: ``::ffff:10.0.0.1`` is ``10.0.0.1``."""
    if address.startswith(_MAPPED) and "." in address:
        return address[len(_MAPPED) :]
    return address


class RuleLimits:
    """What a rule holds open now; kept across reloads with the rule's listener."""

    __slots__ = ("open", "per_client")

    def __init__(self) -> None:
        self.open = 0
        self.per_client: dict[str, int] = {}

    def admits(self, client: str, most: int, most_per_client: int) -> bool:
        """Whether one more connection from ``client`` stays within the limits (0: none)."""
        if most and self.open >= most:
            return False
        return not most_per_client or self.per_client.get(client, 0) < most_per_client

    def add(self, client: str) -> None:
        self.open += 1
        self.per_client[client] = self.per_client.get(client, 0) + 1

    def remove(self, client: str) -> None:
        self.open -= 1
        left = self.per_client.get(client, 0) - 1
        if left > 0:
            self.per_client[client] = left
        else:
            self.per_client.pop(client, None)
