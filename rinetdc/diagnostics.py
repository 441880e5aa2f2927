"""Diagnostics as data: what went wrong, where, and how to fix it.

The parser and each check of the validator return lists of ``Diagnostic``;
nothing here prints (``render`` does, for the CLI).  Codes are
stable (the README lists them) and each belongs to exactly one severity.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from rinetd_run.options import OPTIONS

__all__ = [
    "CODES",
    "HELP",
    "Diagnostic",
    "Place",
    "Related",
    "Severity",
    "Span",
    "make",
    "one_file",
    "span_at",
]


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A run of characters on one line of one file; columns are 1-based, ``end_column``
    exclusive.  ``file`` indexes the files the configuration was read from (0: the file
    checked, others included); ``line`` is the line in that file."""

    line: int
    column: int
    end_column: int
    file: int = 0


# A line of a configuration's whole text (its includes expanded) -> (file, line in it).
Place = Callable[[int], tuple[int, int]]


def one_file(line: int) -> tuple[int, int]:
    """The place of a line of a configuration without includes."""
    return 0, line


def span_at(place: Place, line: int, column: int, end_column: int) -> Span:
    """The span of columns [column, end_column) of ``line`` of the whole text, in its file."""
    file, own = place(line)
    return Span(own, column, end_column, file)


@dataclass(frozen=True, slots=True)
class Related:
    """Another place that takes part in a diagnostic (the first of two binds, say)."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span
    hint: str | None = None
    related: tuple[Related, ...] = ()


# code -> (severity, short title).  Never renumber: CI jobs match on these.
CODES: dict[str, tuple[Severity, str]] = {
    "E001": (Severity.ERROR, "syntax error"),
    "E002": (Severity.ERROR, "invalid IP address"),
    "E003": (Severity.ERROR, "invalid host name"),
    "E004": (Severity.ERROR, "host name does not resolve"),
    "E005": (Severity.ERROR, "unknown service name"),
    "E006": (Severity.ERROR, "port out of range"),
    "E007": (Severity.ERROR, "option value out of range"),
    "E008": (Severity.ERROR, "invalid access pattern"),
    "E009": (Severity.ERROR, "unknown option"),
    "E010": (Severity.ERROR, "duplicate bind"),
    "E011": (Severity.ERROR, "overlapping bind"),
    "E012": (Severity.ERROR, "src and connect address families differ"),
    "E013": (Severity.ERROR, "invalid option value"),
    "E014": (Severity.ERROR, "not in rinetd 0.73"),
    "E015": (Severity.ERROR, "include cycle"),
    "E016": (Severity.ERROR, "includes nested too deep"),
    "E017": (Severity.ERROR, "included file cannot be read"),
    "E018": (Severity.ERROR, "logjson with logcommon"),
    "E019": (Severity.ERROR, "metrics address collides with a bind"),
    "E020": (Severity.ERROR, "proxy-protocol on a udp side"),
    "E021": (Severity.ERROR, "include outside the allowed folders"),
    "E022": (Severity.ERROR, "includes read too much"),
    "E023": (Severity.ERROR, "file cannot be checked"),
    "E024": (Severity.ERROR, "unknown pool"),
    "E025": (Severity.ERROR, "pool member repeated"),
    "E026": (Severity.ERROR, "option in the wrong place"),
    "E027": (Severity.ERROR, "pool member cannot serve the rule's protocol"),
    "W101": (Severity.WARNING, "access pattern can never match"),
    "W102": (Severity.WARNING, "rule denied to everyone by global access rules"),
    "W103": (Severity.WARNING, "timeout on a tcp rule"),
    "W104": (Severity.WARNING, "repeated setting"),
    "W105": (Severity.WARNING, "last line has no newline"),
    "W106": (Severity.WARNING, "no forwarding rules"),
    "W107": (Severity.WARNING, "quoted file name"),
    "W108": (Severity.WARNING, "repeated option"),
    "W109": (Severity.WARNING, "logcommon without logfile"),
    "W110": (Severity.WARNING, "address rinetd 0.73 misreads"),
    "W111": (Severity.WARNING, "option does nothing for the rule's protocol"),
    "W112": (Severity.WARNING, "include matches no file"),
    "W113": (Severity.WARNING, "included file begins with access lines"),
    "W114": (Severity.WARNING, "pool option on a rule without a pool"),
    "W115": (Severity.WARNING, "pool used by no rule"),
    "W116": (Severity.WARNING, "every member of a pool is a backup"),
}


# code -> how to fix it, for tools that show a rule's help (SARIF).
HELP: dict[str, str] = {
    "E001": "The line does not follow rinetd's grammar; the message says what was expected.",
    "E002": "Write IPv4 as four numbers 0..255 without leading zeros, IPv6 without brackets.",
    "E003": "Host name labels are at most 63 characters and names at most 253.",
    "E004": "rinetd resolves names at start; check the name, or check with --no-resolve.",
    "E005": "Use a port number or a service name from /etc/services for that protocol.",
    "E006": "Ports are 1..65535; rinetd 0.73 would silently use another port.",
    "E007": "Each number has a range: timeout 1..2147483647, "
    + ", ".join(f"{o.name} {o.values}" for o in OPTIONS if not o.words and not o.text)
    + " (the README's language table).",
    "E008": "Patterns use digits, hex letters, '.', ':' and the globs * and ?, e.g. 10.0.0.*.",
    "E009": "The options are timeout, src and the extended ones in the README, in one [ ] group.",
    "E010": "Two rules bind the same address, port and protocol: remove one.",
    "E011": "A wildcard bind takes the port on every address: use distinct ports or addresses.",
    "E012": "An IPv4 backend needs an IPv4 src, an IPv6 backend an IPv6 src.",
    "E013": ", ".join(f"{o.name} is {' or '.join(o.words)}" for o in OPTIONS if o.words)
    + "; "
    + ", ".join(f"{o.name} is {o.values}" for o in OPTIONS if o.text)
    + "; metrics serves tcp.",
    "E014": "The C rinetd 0.73 does not have this, or reads the line differently; "
    "check without --target rinetd-0.73 for rinetd-run.",
    "E015": "An include names a file that is already being read: remove the loop.",
    "E016": "Includes nest at most 10 deep below the top file.",
    "E017": "An included file must be a readable UTF-8 text file of at most 64 MiB.",
    "E018": "Choose one log format: logjson or logcommon.",
    "E019": "The metrics endpoint needs an address and port no rule binds.",
    "E020": "The PROXY header describes a TCP connection: use it on tcp->tcp rules only.",
    "E021": "An include reads only files under the top file's folder (links followed); "
    "rinetdc --include-root DIR allows another folder. The refused file is never opened.",
    "E022": "All includes together read at most 1,000 files and 64 MiB: include each file once.",
    "E023": "A file named on the command line could not be read (missing, binary, not UTF-8, "
    "too large) or, under --format github or sarif, lies outside the working directory. "
    "The other files are still checked; the exit code is 2.",
    "E024": "A rule forwards to @NAME: write a `pool NAME HOST PORT` line for it (any file).",
    "E025": "A pool lists each host and port once: remove the repeated line or change it.",
    "E026": "weight and backup belong on pool lines, balance and the health options on rules; "
    "max-connections on either.",
    "E027": "A pool member takes the protocol of the rules that use it: no /tcp or /udp on its "
    "port, and a service name needs a port for every protocol its rules use.",
    "W101": "No client address can match this pattern: it never allows or denies anyone.",
    "W102": "The global access lines reject every client this rule would allow.",
    "W103": "timeout applies to UDP sessions only; a TCP rule ignores it.",
    "W104": "The setting is given again; the last one wins: keep one.",
    "W105": "rinetd 0.73 ignores a last line without newline: end the file with one.",
    "W106": "The configuration forwards nothing.",
    "W107": "rinetd 0.73 keeps the quotes as part of the file name: write it without quotes.",
    "W108": "The option is given twice in one group; the last one wins.",
    "W109": "logcommon only chooses the format of a log file: add logfile.",
    "W110": "rinetd 0.73 misreads this address and refuses to start; rinetd-run reads it.",
    "W111": "The option applies to the other protocol: remove it or change the rule's protocol.",
    "W112": "No file matches the include pattern: check the pattern and the folder.",
    "W113": "Access lines at the top of an included file attach to the rule before the include.",
    "W114": "balance and the health options only do something on a rule that forwards to @POOL.",
    "W115": "No rule forwards to this pool: write @NAME on a rule, or remove the pool's lines.",
    "W116": "Backups take traffic only while no other member is up: mark at least one member "
    "as no backup.",
}


def make(
    code: str,
    message: str,
    span: Span,
    hint: str | None = None,
    related: tuple[Related, ...] = (),
) -> Diagnostic:
    """Build a diagnostic whose severity comes from the code table."""
    severity, _title = CODES[code]
    return Diagnostic(
        code=code, severity=severity, message=message, span=span, hint=hint, related=related
    )
