"""One rule's checks: its bind, connect, options and the protocol each applies to."""

from __future__ import annotations

from rinetd_run.options import BY_NAME, applies
from rinetd_run.ruleset import (
    DEFAULT_TIMEOUT,
    Endpoint,
    Protocol,
    Source,
)

from .. import ast
from ..diagnostics import Related, make
from ..resolve import Resolver
from .pools import member_option_problem
from .scopes import Found, RuleDraft
from .values import address_family, read_endpoint, read_option_value, read_source, read_timeout

__all__ = ["check_rule"]


def check_rule(
    node: ast.RuleLine | ast.BrokenRule, access: list[ast.Access], resolver: Resolver
) -> tuple[RuleDraft, Found]:
    if isinstance(node, ast.BrokenRule):
        return _broken_rule(node, access, resolver)
    bind, found = read_endpoint(node.bind_address, node.bind_port, resolver)
    connect: Endpoint | None
    if node.pool is not None:
        protocol: Protocol = "udp" if node.connect_protocol == "udp" else "tcp"
        connect = Endpoint(f"@{node.pool.name}", None, 0, None, protocol)
    else:
        assert node.connect_address is not None and node.connect_port is not None
        connect, problems = read_endpoint(node.connect_address, node.connect_port, resolver)
        found += problems
    timeout, src = 0, None
    options: dict[str, int | str] = {}
    seen: dict[str, ast.Option] = {}
    for option in node.options:
        if option.name in seen:
            found.append(
                make(
                    "W108",
                    f"{option.name} is given twice: the last one wins",
                    option.span,
                    related=(Related(seen[option.name].span, "the first one, ignored"),),
                )
            )
        seen[option.name] = option
        misplaced = member_option_problem(option, on_pool_line=False)
        if misplaced:
            found += misplaced
            del seen[option.name]
            continue
        if node.pool is None and option.name in BY_NAME and BY_NAME[option.name].pool:
            found.append(
                make(
                    "W114",
                    f"{option.name} only applies to a rule that forwards to a pool",
                    option.span,
                    hint="remove the option, or forward to @POOL",
                )
            )
            del seen[option.name]
            continue
        if option.name == "timeout":
            timeout, problems = read_timeout(option)
        elif option.name == "src":
            src, problems = read_source(option, resolver)
        else:
            value, problems = read_option_value(option.name, option.value, option.value_span)
            if value is not None:
                options[option.name] = value
        found += problems
    protocols = {node.bind_port.protocol, node.connect_protocol}
    if "timeout" in seen and protocols == {"tcp"}:
        found.append(
            make(
                "W103",
                "timeout only applies to udp rules; this tcp rule ignores it",
                seen["timeout"].span,
                hint="remove the option, or use /udp on the bind or connect port",
            )
        )
    if src is not None and connect is not None and node.pool is None:
        found += _check_families(src, connect, seen["src"])
    if "proxy-protocol" in seen and "udp" in protocols:
        found.append(
            make(
                "E020",
                "proxy-protocol needs tcp on both sides: its header describes a TCP connection",
                seen["proxy-protocol"].span,
                hint="remove the option, or forward tcp to tcp",
            )
        )
        del seen["proxy-protocol"]  # the error says it; W111 would say it again
    found += _check_protocol(node.bind_port.protocol, seen)
    draft = RuleDraft(node, bind, connect, timeout or DEFAULT_TIMEOUT, src, access, options)
    draft.pool = node.pool.name if node.pool is not None else None
    return draft, found


def _check_protocol(protocol: str, seen: dict[str, ast.Option]) -> Found:
    """W111: options that a rule of this listener protocol never uses."""
    other = "tcp" if protocol == "udp" else "udp"
    return [
        make(
            "W111",
            f"{name} only applies to {other} rules; this {protocol} rule ignores it",
            option.span,
            hint="remove the option",
        )
        for name, option in seen.items()
        if name in BY_NAME and not applies(name, protocol)
    ]


def _broken_rule(
    node: ast.BrokenRule, access: list[ast.Access], resolver: Resolver
) -> tuple[RuleDraft, Found]:
    """A rule line with a syntax error: only its bind, if it was read, is checked.  Names
    that do not resolve are not reported: the line may not have been meant as a rule."""
    bind: Endpoint | None = None
    found: Found = []
    if node.bind_address is not None and node.bind_port is not None:
        bind, found = read_endpoint(node.bind_address, node.bind_port, resolver)
        if any(d.code in ("E004", "E005") for d in found):
            bind, found = None, []
    return RuleDraft(node, bind, None, DEFAULT_TIMEOUT, None, access), found


def _check_families(src: Source, connect: Endpoint, option: ast.Option) -> Found:
    if src.address is None or connect.address is None:
        return []
    if address_family(src.address) == address_family(connect.address):
        return []
    problem = make(
        "E012",
        f"src {src.host} and connect address {connect.host} are of different families",
        option.value_span,
        hint="an IPv4 backend needs an IPv4 src, an IPv6 backend an IPv6 src",
    )
    return [problem]
