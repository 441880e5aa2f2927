"""Diagnostics as data: what went wrong, where, and how to fix it.

The parser and each check of the validator return lists of ``Diagnostic``;
nothing here prints (``render`` does, for the CLI).  Codes are
stable (the README lists them) and each belongs to exactly one severity.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["CODES", "Diagnostic", "Related", "Severity", "Span", "make"]


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A run of characters on one line; columns are 1-based, ``end_column`` exclusive."""

    line: int
    column: int
    end_column: int


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
