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
class RuleLine:
    """A forwarding rule as written: bind address and port, connect address and port."""

    bind_address: Address
    bind_port: Port
    connect_address: Address
    connect_port: Port
    options: tuple[Option, ...]
    span: Span


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
)


@dataclass(frozen=True, slots=True)
class Config:
    statements: tuple[Statement, ...]
    lines: tuple[str, ...]  # the source, one entry per physical line, for carets
    broken: tuple[int, ...] = ()  # lines that did not parse, so hold no statement
