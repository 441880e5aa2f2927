"""The frozen rule set as typed values: the one model that compiler and runtime share.

The compiler builds it from a checked configuration, ``document`` turns it
into the JSON of ``schema/rules.schema.json`` and back, and the runtime
forwards from it.  ``resolve`` fills in host name addresses as rinetd does at
start and at each reload, with the lookup it is given.  Nothing here reads a
file, opens a socket or looks a name up (tests/unit/runtime/test_layering.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from .options import BY_NAME, OPTIONS, Option

__all__ = [
    "DEFAULT_TIMEOUT",
    "AccessRule",
    "Effective",
    "Endpoint",
    "GlobalOption",
    "Log",
    "Member",
    "Metrics",
    "NamedFile",
    "Pool",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "Source",
    "SourceFile",
    "effective",
    "resolve",
]

DEFAULT_TIMEOUT = 72  # seconds; rinetd 0.73 uses it for `timeout=0` and for no timeout

AccessKind = Literal["allow", "deny"]
Protocol = Literal["tcp", "udp"]
LogFormat = Literal["tab", "common", "json"]


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
class NamedFile:
    """A file name set by a statement (`logfile`, `pidlogfile`), with its line."""

    path: str
    line: int
    file: int = 0


@dataclass(frozen=True, slots=True)
class Log:
    file: NamedFile | None
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
class Member:
    """One `pool NAME HOST PORT [...]` line: a backend of the pool, with its options."""

    host: str  # as written: logs show it
    address: str | None  # numeric; None for a host name not resolved yet
    port: int
    service: str | None
    line: int
    file: int = 0
    weight: int = 1
    backup: bool = False
    max_connections: int = 0  # 0: no limit

    @property
    def key(self) -> tuple[str, int]:
        """What a member is across reloads: its host as written and its port (a reload
        that keeps them keeps its health and counts)."""
        return (self.host, self.port)


@dataclass(frozen=True, slots=True)
class Pool:
    """A named pool: its members in file order (from every file that adds to it)."""

    name: str
    members: tuple[Member, ...]


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
    # Why `dataplane kernel` leaves it to rinetd-run (``kernel_choice``); None: it need not.
    user_space: str | None = None
    # `@NAME`: the pool it forwards to; ``connect`` then holds `@NAME`, port 0 and the
    # connect protocol, and each connection goes to a member of the pool.
    pool: str | None = None

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
    pidfile: NamedFile | None
    rules: tuple[Rule, ...]
    settings: tuple[GlobalOption, ...] = ()  # in file order; the last of a name wins
    metrics: Metrics | None = None
    files: tuple[SourceFile, ...] = ()  # empty for a version 1 rule set
    pools: tuple[Pool, ...] = ()  # by name
    digest: str = ""  # the sealed file's, once read (not part of the document)

    @property
    def logfile(self) -> str | None:
        return self.log.file.path if self.log.file else None

    def global_value(self, name: str) -> int | str | None:
        """A global option's value: the last statement that sets it, else its default."""
        for option in reversed(self.settings):
            if option.name == name:
                return option.value
        return BY_NAME[name].default

    def pool(self, name: str) -> Pool:
        """The pool a rule's `@NAME` names (the compiler and the reader make sure it is)."""
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise RuleSetError(f"no pool named {name}")

    @property
    def max_connections(self) -> int:
        """TCP connections open at once in the process; 0 for no limit but the budget."""
        value = self.global_value("max-connections")
        assert isinstance(value, int)
        return value


@dataclass(frozen=True, slots=True)
class Effective:
    """What one rule does, its own options over the global statements over the defaults:
    a field per rule or global option of ``options.OPTIONS``, in its order (a unit test
    holds them so; a pool member's own options are ``Member``'s)."""

    connect_timeout: int
    idle_timeout: int
    keepalive: bool
    max_connections: int
    max_connections_per_client: int
    max_udp_connections: int
    dns_refresh: int
    proxy_protocol: str | None
    dataplane: str
    balance: str
    health_interval: int
    health_timeout: int
    health_rise: int
    health_fall: int
    health_send: str | None
    health_expect: str | None


def effective(ruleset: RuleSet, rule: Rule) -> Effective:
    """The options ``rule`` runs with: its own, else the global statement's, else the
    default (the table in ``options`` says which statements rules inherit)."""
    own = dict(rule.options)

    def value(option: Option) -> int | str | None:
        if option.name in own:
            return own[option.name]
        if option.scope != "rule" and option.inherited:
            return ruleset.global_value(option.name)
        return option.default

    values: dict[str, int | str | bool | None] = {
        o.field: value(o) for o in OPTIONS if o.scope != "member"
    }
    values["keepalive"] = values["keepalive"] == "on"
    return Effective(**values)  # type: ignore[arg-type]


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


def resolve(ruleset: RuleSet, lookup: Callable[[str], str | None]) -> RuleSet:
    """Every host name replaced by the address ``lookup`` gives now, as rinetd does at
    start and reload (the runtime passes ``lookup.first_address``)."""
    cache: dict[str, str] = {}
    failed: dict[str, RuleSetError] = {}  # asked once a load: pool members may share one

    def numeric(host: str, line: int, what: str = "rule") -> str:
        if host not in cache and host not in failed:
            try:
                cache[host] = _numeric(host, lookup)
            except RuleSetError as error:
                failed[host] = error
        if host in failed:
            raise RuleSetError(f"{what} of line {line}: {failed[host]}") from None
        return cache[host]

    rules = []
    for rule in ruleset.rules:
        bind = replace(rule.bind, address=numeric(rule.bind.host, rule.line))
        connect = rule.connect
        if rule.pool is None:
            connect = replace(connect, address=numeric(connect.host, rule.line))
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
    pools = tuple(replace(pool, members=_members(pool, numeric)) for pool in ruleset.pools)
    return replace(ruleset, rules=tuple(rules), resolved=True, metrics=metrics, pools=pools)


def _members(pool: Pool, numeric: Callable[[str, int, str], str]) -> tuple[Member, ...]:
    """A pool's members resolved: a name that does not resolve leaves its member without
    an address (down until its checks find one) while another member has one; the
    pool fails to load only when none has."""
    members, problem = [], None
    for member in pool.members:
        try:
            address: str | None = numeric(member.host, member.line, "pool member")
        except RuleSetError as error:
            address, problem = None, problem or error
        members.append(replace(member, address=address))
    if problem is not None and all(member.address is None for member in members):
        raise problem
    return tuple(members)
