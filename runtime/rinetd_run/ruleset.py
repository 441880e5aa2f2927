"""The frozen rule set as typed values: the one model that compiler and runtime share.

The compiler builds it from a checked configuration, ``document`` turns it
into the JSON of ``schema/rules.schema.json`` and back, and the runtime
forwards from it.  ``resolve`` fills in host name addresses as rinetd does at
start and at each reload.  Nothing here reads a file or opens a socket.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

__all__ = [
    "DEFAULT_TIMEOUT",
    "AccessRule",
    "Endpoint",
    "Log",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "Setting",
    "Source",
    "resolve",
    "system_resolver",
]

DEFAULT_TIMEOUT = 72  # seconds; rinetd 0.73 uses it for `timeout=0` and for no timeout

AccessKind = Literal["allow", "deny"]
Protocol = Literal["tcp", "udp"]
LogFormat = Literal["tab", "common"]


class RuleSetError(Exception):
    """The rule set cannot be used; the message says why, for an operator."""


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One `allow` or `deny` line."""

    kind: AccessKind
    pattern: str
    line: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A rule's bind or connect side."""

    host: str  # as written (`0`, `localhost`, `::1`): logs show it
    address: str | None  # numeric; None for a host name not resolved yet
    port: int
    service: str | None  # the service name as written, when the port was one
    protocol: Protocol


@dataclass(frozen=True, slots=True)
class Source:
    """A rule's `src=` option: the local address of its backend connections."""

    host: str
    address: str | None


@dataclass(frozen=True, slots=True)
class Setting:
    """A file name set by a statement (`logfile`, `pidlogfile`), with its line."""

    path: str
    line: int


@dataclass(frozen=True, slots=True)
class Log:
    file: Setting | None
    format: LogFormat
    common_line: int | None  # the line of the `logcommon` statement, if any


@dataclass(frozen=True, slots=True)
class Rule:
    """One forwarding rule with its own access lines (those written below it)."""

    line: int
    bind: Endpoint
    connect: Endpoint
    timeout: int  # UDP idle timeout, seconds
    src: Source | None
    access: tuple[AccessRule, ...]

    @property
    def local_address(self) -> str | None:
        """The numeric `src` address for backend connections, once resolved."""
        return self.src.address if self.src is not None else None

    @property
    def listener(self) -> tuple[str, str, int]:
        """What a listening socket is: protocol, numeric address, port."""
        return (self.bind.protocol, self.bind.address or self.bind.host, self.bind.port)


@dataclass(frozen=True, slots=True)
class RuleSet:
    resolved: bool  # False when compiled with --no-resolve
    access: tuple[AccessRule, ...]  # the global access lines
    log: Log
    pidfile: Setting | None
    rules: tuple[Rule, ...]

    @property
    def logfile(self) -> str | None:
        return self.log.file.path if self.log.file else None

    @property
    def logcommon(self) -> bool:
        return self.log.format == "common"


def system_resolver(host: str) -> str | None:
    """The first address getaddrinfo gives, as rinetd uses."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return str(found[0][4][0]) if found else None


def _numeric(host: str, lookup: Callable[[str], str | None]) -> str:
    if host == "0":
        return "0.0.0.0"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    found = lookup(host)
    if found is None:
        raise RuleSetError(f'cannot resolve host "{host}"')
    return found


def resolve(ruleset: RuleSet, lookup: Callable[[str], str | None] = system_resolver) -> RuleSet:
    """Every host name replaced by its address now, as rinetd does at start and reload."""
    cache: dict[str, str] = {}

    def numeric(host: str, line: int) -> str:
        if host not in cache:
            try:
                cache[host] = _numeric(host, lookup)
            except RuleSetError as error:
                raise RuleSetError(f"rule of line {line}: {error}") from None
        return cache[host]

    rules = []
    for rule in ruleset.rules:
        bind = replace(rule.bind, address=numeric(rule.bind.host, rule.line))
        connect = replace(rule.connect, address=numeric(rule.connect.host, rule.line))
        src = rule.src and replace(rule.src, address=numeric(rule.src.host, rule.line))
        rules.append(replace(rule, bind=bind, connect=connect, src=src))
    return replace(ruleset, rules=tuple(rules), resolved=True)
