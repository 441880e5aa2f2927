"""Access control as rinetd 0.73 decides it: glob patterns and the four-step verdict.

Patterns match the client's numeric address text (``::ffff:10.0.0.1`` for an
IPv4 client on a ``::`` listener), case-sensitively; ``*`` is any run of
characters and ``?`` exactly one.  ``[`` and ``]`` are plain characters, which
is why ``fnmatch`` is not used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from .ruleset import AccessRule

__all__ = ["Verdict", "matches", "verdict"]

Verdict = Literal["allowed", "not-allowed", "denied"]


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def matches(pattern: str, address: str) -> bool:
    """True when the glob ``pattern`` matches the whole ``address`` text."""
    return _compiled(pattern).fullmatch(address) is not None


def _check(rules: Sequence[AccessRule], address: str) -> Verdict:
    if not rules:
        return "allowed"  # the common case, checked for every connection
    allows = [r.pattern for r in rules if r.kind == "allow"]
    if allows and not any(matches(p, address) for p in allows):
        return "not-allowed"
    if any(matches(r.pattern, address) for r in rules if r.kind == "deny"):
        return "denied"
    return "allowed"


def verdict(
    global_rules: Sequence[AccessRule], rule_rules: Sequence[AccessRule], address: str
) -> Verdict:
    """Global allows, global denies, then the rule's allows and denies (reference section 2)."""
    first = _check(global_rules, address)
    return first if first != "allowed" else _check(rule_rules, address)
