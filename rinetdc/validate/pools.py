"""Pools: the `pool NAME HOST PORT [...]` lines gathered by name, each member checked as a
connect side is, and the rules that forward to `@NAME` held against them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from rinetd_run.options import BY_NAME, MEMBER_OPTIONS
from rinetd_run.ruleset import Member, Pool

from .. import ast
from ..diagnostics import Related, make
from ..resolve import Resolver, service_port
from .scopes import Found, RuleDraft
from .values import address_family, read_endpoint, read_option_value

__all__ = ["PoolDraft", "check_pool_rules", "check_pools", "member_option_problem"]


@dataclass
class PoolDraft:
    """One pool's lines, and the members that could be understood."""

    name: str
    lines: list[ast.PoolLine] = field(default_factory=list)
    members: list[tuple[ast.PoolLine, Member]] = field(default_factory=list)

    def model(self) -> Pool:
        return Pool(self.name, tuple(member for _line, member in self.members))


def member_option_problem(option: ast.Option, on_pool_line: bool) -> Found:
    """E026 for an option written where it does nothing: a member's own option in a
    rule's group, a rule's option on a pool line."""
    name = option.name
    if on_pool_line and name not in MEMBER_OPTIONS:
        where = "a rule's"
        hint = f"write {name}= on the rule that forwards to the pool"
    elif not on_pool_line and name in BY_NAME and BY_NAME[name].scope == "member":
        where = "a pool member's"
        hint = f"write {name} on a `pool NAME HOST PORT [{name}...]` line"
    else:
        return []
    return [make("E026", f"{name} is {where} option", option.span, hint=hint)]


def _uses(drafts: list[RuleDraft]) -> dict[str, list[RuleDraft]]:
    uses: dict[str, list[RuleDraft]] = {}
    for draft in drafts:
        if draft.pool is not None:
            uses.setdefault(draft.pool, []).append(draft)
    return uses


def _protocols(users: list[RuleDraft]) -> list[str]:
    """The connect protocols the pool's rules reach it by, tcp first; tcp for none."""
    protocols = {d.connect.protocol for d in users if d.connect is not None}
    return sorted(protocols) or ["tcp"]


def check_pools(
    lines: list[ast.PoolLine], drafts: list[RuleDraft], resolver: Resolver
) -> tuple[dict[str, PoolDraft], Found]:
    """Every pool line read as a member; E025 repeats, E026 options, E027 protocols; W115
    pools no rule uses, W116 pools of backups only."""
    pools: dict[str, PoolDraft] = {}
    found: Found = []
    uses = _uses(drafts)
    seen: dict[tuple[str, str, int], ast.PoolLine] = {}
    for line in lines:
        pool = pools.setdefault(line.name, PoolDraft(line.name))
        pool.lines.append(line)
        users = uses.get(line.name, [])
        member, problems = _member(line, _protocols(users), resolver)
        found += problems
        if member is None:
            continue
        key = (line.name, member.address or member.host, member.port)
        if key in seen:
            found.append(
                make(
                    "E025",
                    f"{member.host} {member.port} is already a member of pool {line.name}",
                    line.span,
                    hint="remove this line, or change its host or port",
                    related=(Related(seen[key].span, "the first time"),),
                )
            )
            continue
        seen[key] = line
        pool.members.append((line, member))
    for pool in pools.values():
        first = pool.lines[0]
        if pool.name not in uses:
            found.append(
                make(
                    "W115",
                    f"no rule forwards to pool {pool.name}",
                    first.name_span,
                    hint=f"write @{pool.name} on a rule, or remove the pool's lines",
                )
            )
        if pool.members and all(member.backup for _line, member in pool.members):
            found.append(
                make(
                    "W116",
                    f"every member of pool {pool.name} is a backup, so they serve as plain "
                    "members: a backup waits for the others to be down",
                    first.name_span,
                    hint="remove [backup] from the members that should serve first",
                )
            )
    return pools, found


def _member(
    line: ast.PoolLine, protocols: list[str], resolver: Resolver
) -> tuple[Member | None, Found]:
    found: Found = []
    if line.protocol_span is not None:
        found.append(
            make(
                "E027",
                "a pool member takes the protocol of the rule that uses the pool",
                line.protocol_span,
                hint=f"remove it; write @{line.name}/udp on a rule to reach the pool over udp",
            )
        )
    port = line.port
    endpoint, problems = read_endpoint(
        line.address, ast.Port(port.text, protocols[0], port.span), resolver
    )
    found += problems
    if endpoint is not None and endpoint.service is not None:
        for protocol in protocols[1:]:
            other = service_port(port.text, protocol)
            if other != endpoint.port:
                found.append(
                    make(
                        "E027",
                        f"the service '{port.text}' has "
                        + (f"port {other}" if other else "no port")
                        + f" for {protocol}, and rules reach pool {line.name} over "
                        f"{' and '.join(protocols)}",
                        port.span,
                        hint="use a port number",
                    )
                )
    weight, backup, most = 1, False, 0
    for option in line.options:
        problems = member_option_problem(option, on_pool_line=True)
        found += problems
        if problems:  # a rule's option, timeout= and src= among them
            continue
        value, problems = read_option_value(option.name, option.value, option.value_span)
        found += problems
        if value is None:
            continue
        if option.name == "weight":
            weight = int(value)
        elif option.name == "backup":
            backup = value == "on"
        else:
            most = int(value)
    if endpoint is None or found:
        return None, found
    member = Member(
        host=endpoint.host,
        address=endpoint.address,
        port=endpoint.port,
        service=endpoint.service,
        line=line.span.line,
        file=line.span.file,
        weight=weight,
        backup=backup,
        max_connections=most,
    )
    return member, found


def check_pool_rules(drafts: list[RuleDraft], pools: dict[str, PoolDraft]) -> Found:
    """E024 for `@NAME` of no pool (with the closest name), E012 for a `src=` of another
    family than a member's address."""
    found: Found = []
    for draft in drafts:
        node = draft.node
        if draft.pool is None or not isinstance(node, ast.RuleLine) or node.pool is None:
            continue
        pool = pools.get(draft.pool)
        if pool is None:
            close = difflib.get_close_matches(draft.pool, list(pools), n=1)
            hint = (
                f"did you mean @{close[0]}?"
                if close
                else f"add a line `pool {draft.pool} HOST PORT` (in this file or an included one)"
            )
            found.append(make("E024", f"no pool named {draft.pool}", node.pool.span, hint=hint))
            continue
        src = draft.src
        if src is None or src.address is None:
            continue
        for line, member in pool.members:
            if member.address and address_family(member.address) != address_family(src.address):
                option = next(o for o in node.options if o.name == "src")
                found.append(
                    make(
                        "E012",
                        f"src {src.host} and pool member {member.host} are of different families",
                        option.value_span,
                        hint="every member of the pool must be of src's family",
                        related=(Related(line.span, "the member"),),
                    )
                )
                break
    return found
