"""Access patterns: those no client can match (W101), and rules the global access
lines close to everyone they allow (W102)."""

from __future__ import annotations

from rinetd_run.access import verdict

from .. import ast
from ..diagnostics import Related, make
from .binds import bind_span
from .build import access_rules
from .scopes import Found, RuleDraft
from .values import GLOBS, address_family

__all__ = ["check_patterns", "check_reach"]


def _families(draft: RuleDraft) -> set[int]:
    """The address families of the clients a rule's listener sees."""
    if draft.bind is None or draft.bind.address is None:
        return set()
    return {address_family(draft.bind.address)}


def _never_matches(pattern: str, family: int) -> str | None:
    """Why ``pattern`` can never match a client of ``family``'s text form, or None (also
    for the patterns that match nothing at all, which have their own warning)."""
    if _matches_nothing(pattern) is not None:
        return None
    # IPv6 text has only hex digits before its first ':'.
    head = pattern.split("*")[0].split("?")[0].split(":")[0]
    if family == 4 and ":" in pattern:
        return "IPv4 clients have no ':' in their address"
    if family == 6 and ("." in head or not (GLOBS | {":"}) & set(pattern)):
        return "clients of an IPv6 listener have addresses like 2001:db8::1 or ::ffff:10.0.0.1"
    return None


def _matches_nothing(pattern: str) -> str | None:
    """Why ``pattern`` matches no client address of either family, or None."""
    if "[" in pattern or "]" in pattern:
        return "client addresses have no brackets"
    if "*" not in pattern and len(pattern) < 3:
        return "no client address is that short"
    return None


_IPV6_HINT = "on a :: listener IPv4 clients appear as ::ffff:10.0.0.1: write ::ffff:10.0.0.*"


def check_patterns(drafts: list[RuleDraft], global_access: list[ast.Access]) -> Found:
    """W101: patterns that no client address can match."""
    found: Found = []
    for node in global_access + [a for d in drafts for a in d.access]:
        nothing = _matches_nothing(node.pattern)
        if nothing is not None:
            found.append(make("W101", f"'{node.pattern}' can never match: {nothing}", node.span))
        elif any(c in "ABCDEF" for c in node.pattern):
            found.append(
                make(
                    "W101",
                    f"'{node.pattern}' has uppercase hex digits and can never match",
                    node.span,
                    hint=f"clients are matched as lowercase text: write '{node.pattern.lower()}'",
                )
            )
    for draft in drafts:
        for node in draft.access:
            for family in _families(draft):
                why = _never_matches(node.pattern, family)
                if why:
                    hint = _IPV6_HINT if family == 6 else "remove it, or bind an IPv6 address"
                    found.append(
                        make(
                            "W101", f"'{node.pattern}' can never match: {why}", node.span, hint=hint
                        )
                    )
    every_family = set().union(*(_families(d) for d in drafts)) if drafts else set()
    for node in global_access:
        reasons = [_never_matches(node.pattern, f) for f in every_family]
        if every_family and all(reasons):
            found.append(
                make(
                    "W101",
                    f"'{node.pattern}' can never match on any rule: {reasons[0]}",
                    node.span,
                    hint=_IPV6_HINT if 6 in every_family else None,
                )
            )
    return found


def check_reach(drafts: list[RuleDraft], global_access: list[ast.Access]) -> Found:
    """W102: rules that the global access lines close to every client they allow."""
    for node in global_access:
        if node.kind == "deny" and set(node.pattern) == {"*"} and drafts:
            message = f"'deny {node.pattern}' rejects every client: no rule can be reached"
            return [make("W102", message, node.span)]
    rules = access_rules(global_access)
    found: Found = []
    for draft in drafts:
        allows = [node for node in draft.access if node.kind == "allow"]
        if (
            isinstance(draft.node, ast.BrokenRule)
            or not allows
            or any(GLOBS & set(node.pattern) for node in allows)
        ):
            continue
        if all(verdict(rules, (), node.pattern) != "allowed" for node in allows):
            found.append(
                make(
                    "W102",
                    "every client this rule allows is rejected by the global access rules",
                    bind_span(draft.node),
                    related=tuple(
                        Related(node.span, "allowed here, rejected globally") for node in allows
                    ),
                )
            )
    return found
