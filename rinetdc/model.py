"""The validated model: what a configuration means, ready to be frozen as JSON.

Ports are numbers, scopes are resolved (each rule carries its own access
list), defaults are filled in, and every item keeps the source line it came
from.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TIMEOUT", "AccessEntry", "Endpoint", "Rule", "RuleSet", "Setting"]

DEFAULT_TIMEOUT = 72  # seconds; rinetd 0.73 uses it for `timeout=0` and for no timeout


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str  # as written: `0`, `localhost`, `::1`
    address: str | None  # numeric, as resolved at compile time; None when not resolved
    port: int
    service: str | None  # the service name as written, when the port was one
    protocol: str  # "tcp" or "udp"


@dataclass(frozen=True, slots=True)
class AccessEntry:
    kind: str  # "allow" or "deny"
    pattern: str
    line: int


@dataclass(frozen=True, slots=True)
class Rule:
    line: int
    bind: Endpoint
    connect: Endpoint
    timeout: int
    src_host: str | None
    src_address: str | None
    access: tuple[AccessEntry, ...]


@dataclass(frozen=True, slots=True)
class Setting:
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    access: tuple[AccessEntry, ...]  # global
    logfile: Setting | None
    logcommon: int | None  # the line of the first `logcommon`, if any
    pidfile: Setting | None
