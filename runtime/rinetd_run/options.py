"""The options of the extended language: the one table that defines each of them.

An option is a name an operator writes in a rule's ``[...]`` group, as a global
statement, or both.  Everything else derives from this table: the rule set
reader's ranges and words, ``Effective``'s fields, the compiler's option names,
hints and per-protocol warnings, ``diff``'s names.  The grammar's word lists,
the JSON Schema, the role's variables and the README's table are held against
it by ``tests/unit/test_option_table.py``.  Pure data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BY_NAME",
    "GLOBAL_OPTIONS",
    "MAX_TIMEOUT",
    "MEMBER_OPTIONS",
    "OPTIONS",
    "RULE_OPTIONS",
    "Option",
    "applies",
    "quote",
    "unquote",
]

# "member": only a pool member's [...] group takes it (`pool web 10.0.0.1 80 [weight=3]`).
Scope = Literal["rule", "global", "both", "member"]
Protocols = frozenset[Literal["tcp", "udp"]]

MAX_TIMEOUT = 2**31 - 1  # rinetd stores a timeout in an int
_TCP: Protocols = frozenset({"tcp"})
_UDP: Protocols = frozenset({"udp"})
_BOTH: Protocols = frozenset({"tcp", "udp"})


@dataclass(frozen=True, slots=True)
class Option:
    """One option: where it may be written, what it takes, what it is when unset."""

    name: str  # as the configuration writes it: `connect-timeout`
    scope: Scope  # a rule's [...] group, a global statement, or both
    protocols: Protocols  # the bind protocols whose rules use it (W111 for the others)
    default: int | str | None  # the value when nothing sets it; None: off
    help: str  # one sentence for an operator: what it does
    low: int = 0  # a number's range; unused for words
    high: int = 0
    words: tuple[str, ...] = ()  # the values of a word option; empty for a number
    zero: str = ""  # what 0 means, where 0 is special
    unit: str = ""  # "s" for seconds
    # A global statement of a rule option sets the rules' default, except where the
    # statement means something of its own (the process-wide max-connections).
    inherited: bool = True
    member: bool = False  # a pool member's [...] group takes it too
    pool: bool = False  # only a rule that forwards to a pool uses it (W112 for the others)
    flag: bool = False  # written bare, `[backup]`, for its first word
    text: bool = False  # a quoted text of at most ``high`` characters (``quote``)

    @property
    def field(self) -> str:
        """The name in Python and in the role's variables: `connect_timeout`."""
        return self.name.replace("-", "_")

    @property
    def values(self) -> str:
        """What it takes, as hints and the README say it: `on, off`, `1..86400`."""
        if self.words:
            return ", ".join(self.words)
        if self.text:
            return f"a quoted text of at most {self.high} characters"
        return f"{self.low}..{self.high}"

    def hint(self, statement: bool = False) -> str:
        """The fix for a value it does not take: `use 0..86400 (0 for start and reload only)`,
        `write keepalive=on` in a rule's options, `write keepalive on` as a ``statement``."""
        if self.flag:
            return f"write {self.name} alone: [{self.name}]"
        if self.text:
            return (
                f'write {self.name}="..." with printable characters and the escapes '
                f'\\r \\n \\t \\\\ \\", at most {self.high} characters'
            )
        if self.words:
            return f"write {self.name}{' ' if statement else '='}{self.words[0]}"
        zero = f" (0 for {self.zero})" if self.zero and self.low == 0 else ""
        return f"use {self.low}..{self.high}{zero}"


OPTIONS: tuple[Option, ...] = (
    Option(
        "connect-timeout",
        "both",
        _TCP,
        30,
        "a backend connect that has not finished in N seconds is given up",
        low=1,
        high=86400,
        unit="s",
    ),
    Option(
        "idle-timeout",
        "both",
        _TCP,
        0,
        "a TCP connection with no byte either way for N seconds is ended",
        high=MAX_TIMEOUT,
        zero="never",
        unit="s",
    ),
    Option(
        "keepalive",
        "both",
        _TCP,
        "on",
        "SO_KEEPALIVE on both sockets of a TCP connection",
        words=("on", "off"),
    ),
    Option(
        "max-connections",
        "both",
        _TCP,
        0,
        "TCP connections open at once: a rule's own, a pool member's, or the whole "
        "process's as a statement",
        high=1_000_000,
        zero="no limit",
        inherited=False,
        member=True,
    ),
    Option(
        "max-connections-per-client",
        "rule",
        _TCP,
        0,
        "a rule's open TCP connections from one client address",
        high=1_000_000,
        zero="no limit",
    ),
    Option(
        "max-udp-connections",
        "both",
        _UDP,
        5000,
        "a rule's UDP sessions; one more ends the least recently used",
        high=1_000_000,
        zero="no limit",
    ),
    Option(
        "dns-refresh",
        "both",
        _BOTH,
        0,
        "connect host names are looked up again every N seconds",
        high=86400,
        zero="start and reload only",
        unit="s",
    ),
    Option(
        "proxy-protocol",
        "rule",
        _TCP,
        None,
        "the backend gets a PROXY protocol header with the client's address first",
        words=("v1", "v2"),
    ),
    Option(
        "dataplane",
        "global",
        _BOTH,
        "user",
        "kernel: nftables forwards each rule it can forward as rinetd-run would "
        "(rinetdc check --explain says which), rinetd-run the others",
        words=("user", "kernel"),
    ),
    Option(
        "balance",
        "rule",
        _BOTH,
        "roundrobin",
        "how a pool rule spreads connections over the members that are up",
        words=("roundrobin", "leastconn", "random", "source"),
        pool=True,
    ),
    Option(
        "health-interval",
        "rule",
        _BOTH,
        5,
        "seconds between a TCP connect check of each member of a pool reached over TCP",
        high=86400,
        zero="no active checks, failed connects only",
        unit="s",
        pool=True,
    ),
    Option(
        "health-timeout",
        "rule",
        _BOTH,
        2,
        "a check, or a client's connect to a member while others are left, that has not "
        "finished in N seconds fails",
        low=1,
        high=3600,
        unit="s",
        pool=True,
    ),
    Option(
        "health-rise",
        "rule",
        _BOTH,
        2,
        "checks in a row that must pass before a member that is down takes traffic again",
        low=1,
        high=100,
        pool=True,
    ),
    Option(
        "health-fall",
        "rule",
        _BOTH,
        3,
        "failed checks or connects in a row that take a member out",
        low=1,
        high=100,
        pool=True,
    ),
    Option(
        "health-send",
        "rule",
        _BOTH,
        None,
        "a check sends this text once connected (a protocol's ping)",
        high=200,
        text=True,
        pool=True,
    ),
    Option(
        "health-expect",
        "rule",
        _BOTH,
        None,
        "a check passes only if the member's answer begins with this text",
        high=200,
        text=True,
        pool=True,
    ),
    Option(
        "weight",
        "member",
        _BOTH,
        1,
        "a pool member's share of the connections, against the other members' weights",
        low=1,
        high=256,
    ),
    Option(
        "backup",
        "member",
        _BOTH,
        "off",
        "the member takes connections only while no other member of its pool is up",
        words=("on", "off"),
        flag=True,
    ),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
# What a rule's [...] group takes, and what a global statement sets.
RULE_OPTIONS = tuple(o.name for o in OPTIONS if o.scope in ("rule", "both"))
GLOBAL_OPTIONS = tuple(o.name for o in OPTIONS if o.scope in ("global", "both"))
MEMBER_OPTIONS = tuple(o.name for o in OPTIONS if o.scope == "member" or o.member)


def applies(name: str, protocol: str) -> bool:
    """Whether a rule whose bind is ``protocol`` uses the option at all."""
    return protocol in BY_NAME[name].protocols


# A text option's escapes, as written between its quotes, and what each stands for.
_ESCAPES = {"r": "\r", "n": "\n", "t": "\t", "\\": "\\", '"': '"'}
_WRITTEN = {value: "\\" + key for key, value in _ESCAPES.items()}


def unquote(written: str, most: int) -> str | None:
    """The text a quoted value stands for (`"PING\\r\\n"`), or None when it is not one:
    no quotes, an unknown escape, a character that is not printable ASCII, empty, or
    longer than ``most`` characters.  A bare word (`PING`) stands for itself."""
    if len(written) >= 2 and written[0] == written[-1] == '"':
        inner, out, index = written[1:-1], [], 0
        while index < len(inner):
            char = inner[index]
            if char == "\\":
                if index + 1 >= len(inner) or inner[index + 1] not in _ESCAPES:
                    return None
                out.append(_ESCAPES[inner[index + 1]])
                index += 2
                continue
            out.append(char)
            index += 1
        text = "".join(out)
    else:
        text = written
    if not text or len(text) > most:
        return None
    if any(not (" " <= c <= "~" or c in "\r\n\t") for c in text):
        return None
    return text


def quote(text: str) -> str:
    """The written form of a text value: ``unquote(quote(t)) == t``."""
    return '"' + "".join(_WRITTEN.get(c, c) for c in text) + '"'
