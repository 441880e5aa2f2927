"""The C rinetd 0.73 as a target: the lines it reads otherwise (W110, W105) and the
extensions it lacks (E014)."""

from __future__ import annotations

import re

from .. import ast
from ..diagnostics import Diagnostic, Span, make
from .scopes import Found

__all__ = ["READ_OTHERWISE_BY_073", "check_073_reading", "check_extensions"]


_LEADING_QUAD = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def _misread_by_073(text: str) -> str | None:
    """What 0.73 takes ``text`` for, when it reads a shorter address than is written."""
    quad = _LEADING_QUAD.match(text)
    if quad and quad.end() < len(text):
        return quad.group()
    if text.startswith("0") and text != "0" and not (quad and quad.end() == len(text)):
        return "0"
    return None


def check_073_reading(rules: list[ast.RuleLine | ast.BrokenRule]) -> Found:
    """W110: addresses valid here that 0.73 reads as a bare `0` or a leading dotted quad
    followed by garbage, so it refuses to start."""
    found: Found = []
    for node in rules:
        if not isinstance(node, ast.RuleLine):
            continue
        addresses = [node.bind_address, node.connect_address]
        written = [
            *((a.text, a.span) for a in addresses if a is not None),
            *((o.value, o.value_span) for o in node.options if o.name == "src"),
        ]
        for text, span in written:
            taken = _misread_by_073(text)
            if taken is not None:
                found.append(
                    make(
                        "W110",
                        f"rinetd 0.73 reads '{text}' as the address {taken} followed by "
                        "garbage, and refuses to start",
                        span,
                        hint="fine for rinetd-run; for 0.73 write the address another way "
                        "(::1 for 0::1) or use a name that does not start with a number",
                    )
                )
    return found


# Diagnostics of lines that rinetd 0.73 reads otherwise than rinetd-run does.
READ_OTHERWISE_BY_073 = frozenset({"W105", "W110"})


def check_extensions(config: ast.Config) -> Found:
    """E014 for every statement and option 0.73 does not have."""
    found: Found = []
    for statement in config.statements:
        what: str | None = None
        span = getattr(statement, "span", None)
        if isinstance(statement, ast.Include):
            what = "include"
        elif isinstance(statement, ast.PidLogFile) and statement.keyword == "pidfile":
            what = "pidfile (write pidlogfile)"
        elif isinstance(statement, ast.LogJson):
            what = "logjson"
        elif isinstance(statement, ast.SettingLine):
            what = statement.name
        elif isinstance(statement, ast.MetricsLine):
            what = "metrics"
        elif isinstance(statement, ast.PoolLine):
            what = "pool"
        elif isinstance(statement, ast.RuleLine):
            if statement.pool is not None:
                found.append(_not_in_073(f"a pool (@{statement.pool.name})", statement.pool.span))
            for option in statement.options:
                if option.name not in ("timeout", "src"):
                    found.append(_not_in_073(f"the option {option.name}", option.span))
        if what is not None and span is not None:
            found.append(_not_in_073(what, span))
    return found


def _not_in_073(what: str, span: Span) -> Diagnostic:
    return make(
        "E014",
        f"{what} is not in rinetd 0.73",
        span,
        hint="rinetd-run has it; check without --target rinetd-0.73 to use it",
    )
