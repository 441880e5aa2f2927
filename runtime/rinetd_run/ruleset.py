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
    "GLOBAL_OPTIONS",
    "OPTION_DEFAULTS",
    "RULE_OPTIONS",
    "TCP_ONLY_OPTIONS",
    "UDP_ONLY_OPTIONS",
    "AccessRule",
    "Effective",
    "Endpoint",
    "GlobalOption",
    "Log",
    "Metrics",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "Setting",
    "Source",
    "SourceFile",
    "applies",
    "effective",
    "resolve",
    "system_resolver",
]

DEFAULT_TIMEOUT = 72  # seconds; rinetd 0.73 uses it for `timeout=0` and for no timeout

AccessKind = Literal["allow", "deny"]
Protocol = Literal["tcp", "udp"]
LogFormat = Literal["tab", "common", "json"]

# The options of the extended language, as written (keepalive on|off, proxy-protocol
# v1|v2, the rest whole numbers), with the value each has when nothing sets it.
OPTION_DEFAULTS: dict[str, int | str | None] = {
    "connect-timeout": 30,
    "idle-timeout": 0,
    "keepalive": "on",
    "max-connections": 0,
    "max-connections-per-client": 0,
    "max-udp-connections": 5000,
    "dns-refresh": 0,
    "proxy-protocol": None,
}
# Which of them a rule's [...] group takes, and which a global statement sets (a
# global max-connections is the process's limit, not a default for rules).
RULE_OPTIONS = tuple(OPTION_DEFAULTS)
GLOBAL_OPTIONS = (
    "connect-timeout",
    "idle-timeout",
    "keepalive",
    "max-connections",
    "max-udp-connections",
    "dns-refresh",
)


class RuleSetError(Exception):
    """The rule set cannot be used; the message says why, for an operator."""


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One `allow` or `deny` line."""

    kind: AccessKind
    pattern: str
    line: int
    file: int = 0  # index into RuleSet.files


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
    file: int = 0


@dataclass(frozen=True, slots=True)
class Log:
    file: Setting | None
    format: LogFormat
    format_line: int | None  # the line of the `logcommon` or `logjson` statement, if any
    format_file: int = 0


@dataclass(frozen=True, slots=True)
class GlobalOption:
    """A global statement of the extended language (`connect-timeout 10`), with its place."""

    name: str  # one of GLOBAL_OPTIONS
    value: int | str
    line: int
    file: int = 0


@dataclass(frozen=True, slots=True)
class Metrics:
    """The `metrics ADDRESS PORT` statement: where the metrics endpoint listens."""

    endpoint: Endpoint
    line: int
    file: int = 0


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A configuration file the rule set was compiled from; the first is the top file."""

    name: str  # relative to the top file's folder
    included_from: tuple[int, int] | None  # (file index, line) of the include statement


@dataclass(frozen=True, slots=True)
class Rule:
    """One forwarding rule with its own access lines (those written below it)."""

    line: int
    bind: Endpoint
    connect: Endpoint
    timeout: int  # UDP idle timeout, seconds
    src: Source | None
    access: tuple[AccessRule, ...]
    options: tuple[tuple[str, int | str], ...] = ()  # as written in [...], sorted by name
    file: int = 0

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
    settings: tuple[GlobalOption, ...] = ()  # in file order; the last of a name wins
    metrics: Metrics | None = None
    files: tuple[SourceFile, ...] = ()  # empty for a version 1 rule set
    digest: str = ""  # the sealed file's, once read (not part of the document)

    @property
    def logfile(self) -> str | None:
        return self.log.file.path if self.log.file else None

    def setting(self, name: str) -> int | str | None:
        """A global option's value: the last statement that sets it, else its default."""
        for option in reversed(self.settings):
            if option.name == name:
                return option.value
        return OPTION_DEFAULTS[name]

    @property
    def max_connections(self) -> int:
        """TCP connections open at once in the process; 0 for no limit but the budget."""
        value = self.setting("max-connections")
        assert isinstance(value, int)
        return value


# Options only a TCP listener's connections have, and the one only UDP sessions have:
# a rule whose bind is of the other protocol ignores them (rinetdc warns, W111).
TCP_ONLY_OPTIONS = frozenset(
    {
        "keepalive",
        "idle-timeout",
        "max-connections",
        "max-connections-per-client",
        "connect-timeout",
    }
)
UDP_ONLY_OPTIONS = frozenset({"max-udp-connections"})


def applies(option: str, protocol: str) -> bool:
    """Whether a rule whose bind is ``protocol`` uses ``option`` at all."""
    return option not in (TCP_ONLY_OPTIONS if protocol == "udp" else UDP_ONLY_OPTIONS)


@dataclass(frozen=True, slots=True)
class Effective:
    """What one rule does, its own options over the global statements over the defaults."""

    connect_timeout: int  # seconds
    idle_timeout: int  # seconds; 0 for never
    keepalive: bool
    max_connections: int  # this rule's open connections; 0 for no limit
    max_connections_per_client: int  # per client address; 0 for no limit
    max_udp_connections: int  # UDP sessions of this rule; 0 for no limit
    dns_refresh: int  # seconds; 0 for start and reload only
    proxy_protocol: str | None  # "v1", "v2" or None


def effective(ruleset: RuleSet, rule: Rule) -> Effective:
    """The options ``rule`` runs with."""
    own = dict(rule.options)

    def value(name: str) -> int | str | None:
        if name in own:
            return own[name]
        if name in GLOBAL_OPTIONS and name != "max-connections":
            return ruleset.setting(name)
        return OPTION_DEFAULTS[name]

    def number(name: str) -> int:
        found = value(name)
        assert isinstance(found, int)
        return found

    proxy = value("proxy-protocol")
    return Effective(
        connect_timeout=number("connect-timeout"),
        idle_timeout=number("idle-timeout"),
        keepalive=value("keepalive") == "on",
        max_connections=number("max-connections"),
        max_connections_per_client=number("max-connections-per-client"),
        max_udp_connections=number("max-udp-connections"),
        dns_refresh=number("dns-refresh"),
        proxy_protocol=proxy if isinstance(proxy, str) else None,
    )


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
    metrics = ruleset.metrics
    if metrics is not None:
        host = metrics.endpoint.host
        try:
            address = cache.get(host) or _numeric(host, lookup)
        except RuleSetError as error:
            raise RuleSetError(f"metrics of line {metrics.line}: {error}") from None
        metrics = replace(metrics, endpoint=replace(metrics.endpoint, address=address))
    return replace(ruleset, rules=tuple(rules), resolved=True, metrics=metrics)
