"""The typed syntax tree: one frozen node per statement, each with its source span.

Nodes hold text exactly as written; meaning (numbers, resolved addresses,
scopes) is the validator's job.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

from .diagnostics import Span

__all__ = [
    "Access",
    "Address",
    "AddressKind",
    "BrokenRule",
    "Config",
    "Include",
    "LogCommon",
    "LogFile",
    "LogJson",
    "MetricsLine",
    "Option",
    "PidLogFile",
    "PoolLine",
    "PoolRef",
    "Port",
    "RuleLine",
    "SettingLine",
    "Statement",
    "address_kind",
]


class AddressKind(enum.Enum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    ZERO = "zero"  # the bare `0`, which rinetd reads as 0.0.0.0
    HOSTNAME = "hostname"


_IPV4 = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def address_kind(text: str) -> AddressKind:
    """Which of the four address forms ``text`` (already accepted by the grammar) is."""
    if ":" in text:
        return AddressKind.IPV6
    if text == "0":
        return AddressKind.ZERO
    if _IPV4.fullmatch(text):
        return AddressKind.IPV4
    return AddressKind.HOSTNAME


@dataclass(frozen=True, slots=True)
class Address:
    text: str
    kind: AddressKind
    span: Span


@dataclass(frozen=True, slots=True)
class Port:
    text: str
    protocol: str  # "tcp" or "udp"; "tcp" when none is written
    span: Span  # the port text, without the protocol


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # "timeout", "src", or an extended option ("connect-timeout", ...)
    value: str
    span: Span  # the whole `name = value`
    value_span: Span


@dataclass(frozen=True, slots=True)
class PoolRef:
    """`@NAME` or `@NAME/udp` where a rule's connect address and port stand."""

    name: str
    protocol: str | None  # as written after the name; None: the bind's
    span: Span  # the whole reference, `@` and protocol included


@dataclass(frozen=True, slots=True)
class RuleLine:
    """A forwarding rule as written: bind address and port, then connect address and port
    or a pool (exactly one of the two)."""

    bind_address: Address
    bind_port: Port
    connect_address: Address | None
    connect_port: Port | None
    options: tuple[Option, ...]
    span: Span
    pool: PoolRef | None = None

    @property
    def connect_protocol(self) -> str:
        if self.pool is not None:
            return self.pool.protocol or self.bind_port.protocol
        assert self.connect_port is not None
        return self.connect_port.protocol

    @property
    def connect_span(self) -> Span:
        """Where the connect side is written: its address, or the pool reference."""
        if self.pool is not None:
            return self.pool.span
        assert self.connect_address is not None
        return self.connect_address.span


@dataclass(frozen=True, slots=True)
class PoolLine:
    """`pool NAME HOST PORT [options]`: one member of the pool NAME."""

    name: str
    name_span: Span
    address: Address
    port: Port
    options: tuple[Option, ...]
    span: Span  # the whole statement
    protocol_span: Span | None = None  # a `/tcp` or `/udp` written on the port (an error)


@dataclass(frozen=True, slots=True)
class Access:
    kind: Literal["allow", "deny"]
    pattern: str
    span: Span  # the pattern


@dataclass(frozen=True, slots=True)
class LogFile:
    path: str  # as written, quotes included
    span: Span


@dataclass(frozen=True, slots=True)
class PidLogFile:
    path: str
    span: Span
    keyword: str = "pidlogfile"  # or rinetd-uv's "pidfile"


@dataclass(frozen=True, slots=True)
class LogCommon:
    span: Span


@dataclass(frozen=True, slots=True)
class LogJson:
    span: Span


@dataclass(frozen=True, slots=True)
class Include:
    """`include PATTERN`; the included lines follow it in the text the validator sees."""

    pattern: str  # as written, quotes included
    span: Span  # the pattern


@dataclass(frozen=True, slots=True)
class SettingLine:
    """A global setting of the extended language: `connect-timeout 10`, `keepalive off`."""

    name: str
    value: str
    span: Span  # the whole statement
    value_span: Span


@dataclass(frozen=True, slots=True)
class MetricsLine:
    """`metrics ADDRESS PORT`: where the metrics endpoint listens."""

    address: Address
    port: Port
    span: Span


@dataclass(frozen=True, slots=True)
class BrokenRule:
    """A line that was meant as a rule but does not parse (its error is reported).  It
    still opens a rule's scope, so the access lines below it are not taken as global,
    and its bind, when that much could be read, still takes part in bind checks."""

    bind_address: Address | None
    bind_port: Port | None
    span: Span  # the whole line


Statement = (
    RuleLine
    | BrokenRule
    | Access
    | LogFile
    | PidLogFile
    | LogCommon
    | LogJson
    | Include
    | SettingLine
    | MetricsLine
    | PoolLine
)


@dataclass(frozen=True, slots=True)
class Config:
    statements: tuple[Statement, ...]
    lines: tuple[str, ...]  # the source, one entry per physical line, for carets
    broken: tuple[int, ...] = ()  # lines that did not parse, so hold no statement
