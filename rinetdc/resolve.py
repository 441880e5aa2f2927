"""Name lookups the validator needs: host names and service names.

Kept apart so validation stays a pure function of (AST, resolver); tests and
``--no-resolve`` pass a resolver that never touches DNS.
"""

from __future__ import annotations

import socket
from functools import cache
from typing import Protocol

from rinetd_run.lookup import first_address

__all__ = ["NoResolver", "Resolver", "SystemResolver", "service_port"]


class Resolver(Protocol):
    def resolve(self, host: str) -> str | None:
        """The first numeric address of ``host`` (as rinetd uses), or None if it has none."""
        ...

    @property
    def enabled(self) -> bool: ...


class SystemResolver:
    """getaddrinfo, like rinetd 0.73: the first address returned wins."""

    enabled = True

    @cache  # noqa: B019 - one resolver per run; the cache dies with it
    def resolve(self, host: str) -> str | None:
        return first_address(host)  # the runtime's own lookup: both must agree


class NoResolver:
    """For CI machines without the production DNS: host names are checked for syntax only."""

    enabled = False

    def resolve(self, host: str) -> str | None:
        return None


@cache
def service_port(name: str, protocol: str) -> int | None:
    """The port of a service name in /etc/services for one protocol, or None."""
    try:
        return socket.getservbyname(name, protocol)
    except OSError:
        return None
