"""Typed AST -> validated model, with every error and warning found on the way.

A pure function of the AST and a resolver: nothing here prints or exits.
The checks follow rinetd 0.73's meaning of each statement (reference
section 1) and add the ones 0.73 lacks: port ranges, bind collisions,
patterns that can never match.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from rinetd_run.access import AccessRule, verdict

from . import ast, model
from .diagnostics import Diagnostic, Related, Span, make
from .resolve import Resolver, service_port

__all__ = ["validate"]

_MAX_TIMEOUT = 2**31 - 1  # rinetd stores it in an int
_GLOBS = frozenset("*?")


@dataclass
class _RuleDraft:
    node: ast.Rule
    bind: model.Endpoint | None
    connect: model.Endpoint | None
    timeout: int
    src: ast.Address | None
    src_address: str | None
    access: list[tuple[model.AccessEntry, Span]] = field(default_factory=list)


def validate(config: ast.Config, resolver: Resolver) -> tuple[model.RuleSet, list[Diagnostic]]:
    """Check ``config``; return its model and the diagnostics, in source order."""
    found: list[Diagnostic] = []
    drafts: list[_RuleDraft] = []
    global_access: list[tuple[model.AccessEntry, Span]] = []
    logfile: ast.LogFile | None = None
    pidfile: ast.PidLogFile | None = None
    logcommon: ast.LogCommon | None = None
    for statement in config.statements:
        if isinstance(statement, ast.Rule):
            drafts.append(_rule(statement, resolver, found))
        elif isinstance(statement, ast.Access):
            entry = model.AccessEntry(statement.kind, statement.pattern, statement.span.line)
            (drafts[-1].access if drafts else global_access).append((entry, statement.span))
        elif isinstance(statement, ast.LogFile):
            _repeated(logfile, statement, "logfile", found)
            logfile = statement
        elif isinstance(statement, ast.PidLogFile):
            _repeated(pidfile, statement, "pidlogfile", found)
            pidfile = statement
        else:
            logcommon = logcommon or statement

    _check_binds(drafts, found)
    _check_patterns(drafts, global_access, found)
    if not drafts and not config.broken:
        last = max(len(config.lines), 1)
        found.append(make("W106", "the configuration has no forwarding rules", Span(last, 1, 2)))
    if logcommon is not None and logfile is None:
        found.append(
            make(
                "W109",
                "logcommon has no effect without a logfile",
                logcommon.span,
                hint="add `logfile /var/log/rinetd.log`",
            )
        )
    found.sort(key=lambda d: (d.span, d.code))
    rules = tuple(
        model.Rule(
            line=d.node.span.line,
            bind=d.bind,
            connect=d.connect,
            timeout=d.timeout,
            src_host=d.src.text if d.src else None,
            src_address=d.src_address,
            access=tuple(entry for entry, _span in d.access),
        )
        for d in drafts
        if d.bind is not None and d.connect is not None
    )
    ruleset = model.RuleSet(
        rules=rules,
        access=tuple(entry for entry, _span in global_access),
        logfile=model.Setting(logfile.path, logfile.span.line) if logfile else None,
        logcommon=logcommon.span.line if logcommon else None,
        pidfile=model.Setting(pidfile.path, pidfile.span.line) if pidfile else None,
    )
    return ruleset, found


def _repeated(
    before: ast.LogFile | ast.PidLogFile | None,
    now: ast.LogFile | ast.PidLogFile,
    keyword: str,
    found: list[Diagnostic],
) -> None:
    if before is not None:
        found.append(
            make(
                "W104",
                f"{keyword} is set again: this one wins",
                now.span,
                hint=f"keep one {keyword} line",
                related=(Related(before.span, f"the earlier {keyword}, ignored"),),
            )
        )


# -- one rule ----------------------------------------------------------------


def _rule(node: ast.Rule, resolver: Resolver, found: list[Diagnostic]) -> _RuleDraft:
    bind = _endpoint(node.bind_address, node.bind_port, resolver, found)
    connect = _endpoint(node.connect_address, node.connect_port, resolver, found)
    timeout, src, src_address = 0, None, None
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
        if option.name == "timeout":
            timeout = int(option.value)
            if timeout > _MAX_TIMEOUT:
                found.append(
                    make(
                        "E007",
                        f"timeout {option.value} is out of range",
                        option.value_span,
                        hint=f"use 1..{_MAX_TIMEOUT} seconds (0 means the default, 72)",
                    )
                )
                timeout = 0
        else:
            src = ast.Address(option.value, ast.address_kind(option.value), option.value_span)
            src_address = _address(src, resolver, found)
    protocols = {node.bind_port.protocol, node.connect_port.protocol}
    if "timeout" in seen and protocols == {"tcp"}:
        found.append(
            make(
                "W103",
                "timeout only applies to udp rules; this tcp rule ignores it",
                seen["timeout"].span,
                hint="remove the option, or use /udp on the bind or connect port",
            )
        )
    mixed = (
        src is not None
        and src_address is not None
        and connect is not None
        and connect.address is not None
        and _family(src_address) != _family(connect.address)
    )
    if mixed and src is not None and connect is not None:
        found.append(
            make(
                "E012",
                f"src {src.text} and connect address {connect.host} are of different families",
                src.span,
                hint="an IPv4 backend needs an IPv4 src, an IPv6 backend an IPv6 src",
            )
        )
    return _RuleDraft(
        node=node,
        bind=bind,
        connect=connect,
        timeout=timeout or model.DEFAULT_TIMEOUT,
        src=src,
        src_address=src_address,
    )


def _family(address: str) -> int:
    return ipaddress.ip_address(address).version


def _endpoint(
    address: ast.Address, port: ast.Port, resolver: Resolver, found: list[Diagnostic]
) -> model.Endpoint | None:
    before = len(found)
    numeric = _address(address, resolver, found)
    number = _port(port, found)
    if number is None or len(found) > before:
        return None
    return model.Endpoint(
        host=address.text,
        address=numeric,
        port=number,
        service=None if port.text.isdigit() else port.text,
        protocol=port.protocol,
    )


def _address(address: ast.Address, resolver: Resolver, found: list[Diagnostic]) -> str | None:
    """The numeric form of an address; None (with a diagnostic, if it is wrong) otherwise."""
    text, span = address.text, address.span
    if address.kind is ast.AddressKind.ZERO:
        return "0.0.0.0"
    if address.kind in (ast.AddressKind.IPV4, ast.AddressKind.IPV6):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            hint = None
            if address.kind is ast.AddressKind.IPV4:
                hint = "four numbers 0..255 without leading zeros, e.g. 10.0.0.1"
            found.append(make("E002", f"'{text}' is not a valid IP address", span, hint=hint))
            return None
    labels = text.split(".")
    if len(text) > 253 or any(len(label) > 63 for label in labels):
        found.append(
            make(
                "E003",
                f"'{text}' is not a valid host name",
                span,
                hint="labels are at most 63 characters, names at most 253",
            )
        )
        return None
    numeric = resolver.resolve(text)
    if numeric is None and resolver.enabled:
        found.append(
            make(
                "E004",
                f"host name '{text}' does not resolve",
                span,
                hint="rinetd resolves names at start; check the name, "
                "or use --no-resolve where the production DNS is not reachable",
            )
        )
    return numeric


def _port(port: ast.Port, found: list[Diagnostic]) -> int | None:
    if port.text.isdigit():
        number = int(port.text)
        if 1 <= number <= 65535:
            return number
        found.append(
            make(
                "E006",
                f"port {port.text} is out of range",
                port.span,
                hint="ports are 1..65535 (rinetd 0.73 would silently use another port)",
            )
        )
        return None
    service = service_port(port.text, port.protocol)
    if service is None:
        other = "udp" if port.protocol == "tcp" else "tcp"
        hint = (
            f"'{port.text}' is a {other} service: add /{other} or use its number"
            if service_port(port.text, other)
            else "use a port number or a name from /etc/services"
        )
        found.append(
            make("E005", f"unknown {port.protocol} service '{port.text}'", port.span, hint=hint)
        )
    return service


# -- across rules ------------------------------------------------------------


def _bind_key(draft: _RuleDraft) -> str:
    assert draft.bind is not None
    return draft.bind.address or draft.bind.host


def _collides(a: str, b: str) -> str | None:
    """Why two bind addresses on one port and protocol cannot both be bound, or None."""
    if a == b:
        return "duplicate"
    try:
        first, second = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return None  # an unresolved host name: nothing is known
    for one, other in ((first, second), (second, first)):
        if one == ipaddress.IPv6Address("::"):
            return "overlap"  # dual-stack: takes every address of both families
        if one == ipaddress.IPv4Address("0.0.0.0") and other.version == 4:
            return "overlap"
    return None


def _check_binds(drafts: list[_RuleDraft], found: list[Diagnostic]) -> None:
    by_port: dict[tuple[str, int], list[_RuleDraft]] = {}
    for draft in drafts:
        if draft.bind is None:
            continue
        group = by_port.setdefault((draft.bind.protocol, draft.bind.port), [])
        for earlier in group:
            why = _collides(_bind_key(earlier), _bind_key(draft))
            if why is None:
                continue
            here, there = _bind_span(draft.node), _bind_span(earlier.node)
            bind = f"{draft.bind.host} {draft.bind.port}/{draft.bind.protocol}"
            if why == "duplicate":
                diagnostic = make(
                    "E010",
                    f"{bind} is bound twice",
                    here,
                    hint="remove one of the two rules",
                    related=(Related(there, "first bound here"),),
                )
            else:
                diagnostic = make(
                    "E011",
                    f"{bind} overlaps the bind of line {there.line}",
                    here,
                    hint="a wildcard address (0, 0.0.0.0, ::) takes the port on every "
                    "address; use distinct ports or specific addresses",
                    related=(Related(there, "this bind takes the same port"),),
                )
            found.append(diagnostic)
            break
        group.append(draft)


def _bind_span(node: ast.Rule) -> Span:
    return Span(node.span.line, node.bind_address.span.column, node.bind_port.span.end_column)


# -- access patterns ---------------------------------------------------------


def _families(draft: _RuleDraft) -> set[int]:
    """The address families of the clients a rule's listener sees."""
    if draft.bind is None or draft.bind.address is None:
        return set()
    return {_family(draft.bind.address)}


def _never_matches(pattern: str, family: int) -> str | None:
    """Why ``pattern`` can never match a client of ``family``'s text form, or None."""
    # IPv6 text has only hex digits before its first ':'.
    head = pattern.split("*")[0].split("?")[0].split(":")[0]
    if family == 4 and ":" in pattern:
        return "IPv4 clients have no ':' in their address"
    if family == 6 and ("." in head or not (_GLOBS | {":"}) & set(pattern)):
        return "clients of an IPv6 listener have addresses like 2001:db8::1 or ::ffff:10.0.0.1"
    return None


def _check_patterns(
    drafts: list[_RuleDraft],
    global_access: list[tuple[model.AccessEntry, Span]],
    found: list[Diagnostic],
) -> None:
    for entry, span in global_access + [a for d in drafts for a in d.access]:
        if any(c in "ABCDEF" for c in entry.pattern):
            found.append(
                make(
                    "W101",
                    f"'{entry.pattern}' has uppercase hex digits and can never match",
                    span,
                    hint=f"clients are matched as lowercase text: write '{entry.pattern.lower()}'",
                )
            )
    ipv6_hint = "on a :: listener IPv4 clients appear as ::ffff:10.0.0.1: write ::ffff:10.0.0.*"
    for draft in drafts:
        for entry, span in draft.access:
            for family in _families(draft):
                why = _never_matches(entry.pattern, family)
                if why:
                    hint = ipv6_hint if family == 6 else "remove it, or bind an IPv6 address"
                    found.append(
                        make("W101", f"'{entry.pattern}' can never match: {why}", span, hint=hint)
                    )
    every_family = set().union(*(_families(d) for d in drafts)) if drafts else set()
    for entry, span in global_access:
        reasons = [_never_matches(entry.pattern, f) for f in every_family]
        if every_family and all(reasons):
            found.append(
                make(
                    "W101",
                    f"'{entry.pattern}' can never match on any rule: {reasons[0]}",
                    span,
                    hint=ipv6_hint if 6 in every_family else None,
                )
            )
    _check_reach(drafts, global_access, found)


def _check_reach(
    drafts: list[_RuleDraft],
    global_access: list[tuple[model.AccessEntry, Span]],
    found: list[Diagnostic],
) -> None:
    rules = [AccessRule(e.kind, e.pattern) for e, _span in global_access]  # type: ignore[arg-type]
    for entry, span in global_access:
        if entry.kind == "deny" and set(entry.pattern) == {"*"} and drafts:
            found.append(
                make(
                    "W102",
                    f"'deny {entry.pattern}' rejects every client: no rule can be reached",
                    span,
                )
            )
            return
    for draft in drafts:
        allows = [(e, s) for e, s in draft.access if e.kind == "allow"]
        if not allows or any(_GLOBS & set(e.pattern) for e, _s in allows):
            continue
        if all(verdict(rules, (), e.pattern) != "allowed" for e, _s in allows):
            found.append(
                make(
                    "W102",
                    "every client this rule allows is rejected by the global access rules",
                    _bind_span(draft.node),
                    related=tuple(
                        Related(s, "allowed here, rejected globally") for _e, s in allows
                    ),
                )
            )
