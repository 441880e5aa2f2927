"""Typed AST -> the rule set model, with every error and warning found on the way.

A pure function of the AST and a resolver: nothing here prints or exits.
``validate`` sorts the statements into their scopes, then runs the checks
one after the other; each check returns its own diagnostics.  The checks
follow rinetd 0.73's meaning of each statement (reference section 1) and add
the ones 0.73 lacks: port ranges, bind collisions, patterns that can never
match, settings that do nothing.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from rinetd_run.access import verdict
from rinetd_run.options import BY_NAME, MAX_TIMEOUT, applies
from rinetd_run.ruleset import (
    DEFAULT_TIMEOUT,
    AccessRule,
    Endpoint,
    GlobalOption,
    Log,
    Metrics,
    NamedFile,
    Rule,
    RuleSet,
    Source,
)

from . import ast
from .diagnostics import Diagnostic, Related, Span, make
from .resolve import Resolver, service_port

__all__ = ["TARGETS", "for_073", "validate"]

TARGETS = ("rinetd-run", "rinetd-0.73")

_GLOBS = frozenset("*?")

Found = list[Diagnostic]


@dataclass
class _Scopes:
    """The statements of a file, sorted into what each check reads."""

    rules: list[ast.RuleLine | ast.BrokenRule] = field(default_factory=list)
    rule_access: list[list[ast.Access]] = field(default_factory=list)  # one list per rule
    global_access: list[ast.Access] = field(default_factory=list)
    logfiles: list[ast.LogFile] = field(default_factory=list)
    pidfiles: list[ast.PidLogFile] = field(default_factory=list)
    logcommons: list[ast.LogCommon] = field(default_factory=list)
    logjsons: list[ast.LogJson] = field(default_factory=list)
    settings: list[ast.SettingLine] = field(default_factory=list)
    metrics: list[ast.MetricsLine] = field(default_factory=list)
    includes: list[ast.Include] = field(default_factory=list)


@dataclass
class _RuleDraft:
    """One rule as far as it could be understood: bind or connect is None if it is wrong."""

    node: ast.RuleLine | ast.BrokenRule
    bind: Endpoint | None
    connect: Endpoint | None
    timeout: int
    src: Source | None
    access: list[ast.Access]
    options: dict[str, int | str] = field(default_factory=dict)


def validate(
    config: ast.Config,
    resolver: Resolver,
    target: str = "rinetd-run",
    last_line: int | None = None,
) -> tuple[RuleSet, list[Diagnostic]]:
    """Check ``config`` for ``target`` (one of TARGETS); return its rule set and the
    diagnostics, in source order.  ``last_line``: the text's line that ends the top file,
    where included files follow it."""
    scopes = _sort(config)
    found: Found = []
    drafts = []
    for node, access in zip(scopes.rules, scopes.rule_access, strict=True):
        draft, problems = _rule(node, access, resolver)
        drafts.append(draft)
        found += problems
    settings, problems = _check_settings(scopes.settings)
    found += problems
    metrics, problems = _check_metrics(scopes.metrics, resolver)
    found += problems
    found += _check_binds(drafts, metrics)
    found += _check_patterns(drafts, scopes.global_access)
    found += _check_reach(drafts, scopes.global_access)
    found += _check_files(scopes)
    found += _check_073_reading(scopes.rules)
    found += _check_not_empty(config, drafts, last_line)
    if target == "rinetd-0.73":
        found += _extensions(config)
    found.sort(key=lambda d: (d.span, d.code))
    ruleset = _ruleset(drafts, scopes, resolved=resolver.enabled)
    metrics_model = None
    if metrics is not None:
        metrics_model = Metrics(metrics[1], metrics[0].span.line)
    return replace(ruleset, settings=settings, metrics=metrics_model), found


def _sort(config: ast.Config) -> _Scopes:
    """Access lines belong to the rule above them; those above every rule are global."""
    scopes = _Scopes()
    for statement in config.statements:
        if isinstance(statement, (ast.RuleLine, ast.BrokenRule)):
            scopes.rules.append(statement)
            scopes.rule_access.append([])
        elif isinstance(statement, ast.Access):
            (scopes.rule_access[-1] if scopes.rules else scopes.global_access).append(statement)
        elif isinstance(statement, ast.LogFile):
            scopes.logfiles.append(statement)
        elif isinstance(statement, ast.PidLogFile):
            scopes.pidfiles.append(statement)
        elif isinstance(statement, ast.LogCommon):
            scopes.logcommons.append(statement)
        elif isinstance(statement, ast.LogJson):
            scopes.logjsons.append(statement)
        elif isinstance(statement, ast.SettingLine):
            scopes.settings.append(statement)
        elif isinstance(statement, ast.MetricsLine):
            scopes.metrics.append(statement)
        else:
            scopes.includes.append(statement)
    return scopes


def _access(nodes: list[ast.Access]) -> tuple[AccessRule, ...]:
    return tuple(AccessRule(node.kind, node.pattern, node.span.line) for node in nodes)


def _setting(nodes: Sequence[ast.LogFile | ast.PidLogFile]) -> NamedFile | None:
    return NamedFile(nodes[-1].path, nodes[-1].span.line) if nodes else None  # the last wins


def _ruleset(drafts: list[_RuleDraft], scopes: _Scopes, *, resolved: bool) -> RuleSet:
    # logjson with logcommon is an error (E018), so at most one format is chosen here.
    chosen = (scopes.logjsons or scopes.logcommons or [None])[0]
    return RuleSet(
        resolved=resolved,
        access=_access(scopes.global_access),
        log=Log(
            file=_setting(scopes.logfiles),
            format="tab" if chosen is None else "json" if scopes.logjsons else "common",
            format_line=None if chosen is None else chosen.span.line,
        ),
        pidfile=_setting(scopes.pidfiles),
        rules=tuple(
            Rule(
                line=d.node.span.line,
                bind=d.bind,
                connect=d.connect,
                timeout=d.timeout,
                src=d.src,
                access=_access(d.access),
                options=tuple(sorted(d.options.items())),
            )
            for d in drafts
            if d.bind is not None and d.connect is not None
        ),
    )


# -- one rule ----------------------------------------------------------------


def _rule(
    node: ast.RuleLine | ast.BrokenRule, access: list[ast.Access], resolver: Resolver
) -> tuple[_RuleDraft, Found]:
    if isinstance(node, ast.BrokenRule):
        return _broken_rule(node, access, resolver)
    bind, found = _endpoint(node.bind_address, node.bind_port, resolver)
    connect, problems = _endpoint(node.connect_address, node.connect_port, resolver)
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
        if option.name == "timeout":
            timeout, problems = _timeout(option)
        elif option.name == "src":
            src, problems = _source(option, resolver)
        else:
            value, problems = _option_value(option.name, option.value, option.value_span)
            if value is not None:
                options[option.name] = value
        found += problems
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
    if src is not None and connect is not None:
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
    draft = _RuleDraft(node, bind, connect, timeout or DEFAULT_TIMEOUT, src, access, options)
    return draft, found


def _option_value(name: str, text: str, span: Span) -> tuple[int | str | None, Found]:
    """An extended option's or setting's value, checked against its range or words."""
    option = BY_NAME[name]
    if option.words:
        if text in option.words:
            return text, []
        words = " or ".join(option.words)
        return None, [make("E013", f"{name} is {words}, not '{_shown(text)}'", span, option.hint)]
    number = _bounded(text, option.high) if text.isdigit() else None
    if number is not None and number >= option.low:
        return number, []
    what = "a whole number" if not text.isdigit() else "out of range"
    return None, [make("E007", f"{name} {_shown(text)} is {what}", span, hint=option.hint)]


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


def _bounded(digits: str, high: int) -> int | None:
    """The value of a digit string of any length and zero padding, or None above ``high``
    (without ever building a number of thousands of digits)."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(high)):
        return None
    value = int(significant)
    return value if value <= high else None


def _shown(text: str) -> str:
    """A value as a message quotes it: long ones cut, with their length."""
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"


def _broken_rule(
    node: ast.BrokenRule, access: list[ast.Access], resolver: Resolver
) -> tuple[_RuleDraft, Found]:
    """A rule line with a syntax error: only its bind, if it was read, is checked.  Names
    that do not resolve are not reported: the line may not have been meant as a rule."""
    bind: Endpoint | None = None
    found: Found = []
    if node.bind_address is not None and node.bind_port is not None:
        bind, found = _endpoint(node.bind_address, node.bind_port, resolver)
        if any(d.code in ("E004", "E005") for d in found):
            bind, found = None, []
    return _RuleDraft(node, bind, None, DEFAULT_TIMEOUT, None, access), found


def _timeout(option: ast.Option) -> tuple[int, Found]:
    timeout = _bounded(option.value, MAX_TIMEOUT)
    if timeout is not None:
        return timeout, []
    problem = make(
        "E007",
        f"timeout {_shown(option.value)} is out of range",
        option.value_span,
        hint=f"use 1..{MAX_TIMEOUT} seconds (0 means the default, 72)",
    )
    return 0, [problem]


def _source(option: ast.Option, resolver: Resolver) -> tuple[Source, Found]:
    written = ast.Address(option.value, ast.address_kind(option.value), option.value_span)
    address, found = _address(written, resolver)
    return Source(option.value, address), found


def _check_families(src: Source, connect: Endpoint, option: ast.Option) -> Found:
    if src.address is None or connect.address is None:
        return []
    if _family(src.address) == _family(connect.address):
        return []
    problem = make(
        "E012",
        f"src {src.host} and connect address {connect.host} are of different families",
        option.value_span,
        hint="an IPv4 backend needs an IPv4 src, an IPv6 backend an IPv6 src",
    )
    return [problem]


def _family(address: str) -> int:
    """4 or 6, for an address already in numeric form."""
    return 6 if ":" in address else 4


def _plain_ipv4(text: str) -> bool:
    """True for a dotted quad (as the grammar gives it) that is already canonical: the
    common case, checked without ``ipaddress``, which was a tenth of a large compile."""
    return all(len(p) <= 3 and (p == "0" or p[0] != "0") and int(p) <= 255 for p in text.split("."))


def _endpoint(
    address: ast.Address, port: ast.Port, resolver: Resolver
) -> tuple[Endpoint | None, Found]:
    numeric, found = _address(address, resolver)
    number, problems = _port(port)
    found += problems
    if number is None or found:
        return None, found
    endpoint = Endpoint(
        host=address.text,
        address=numeric,
        port=number,
        service=None if port.text.isdigit() else port.text,
        protocol="udp" if port.protocol == "udp" else "tcp",
    )
    return endpoint, found


def _address(address: ast.Address, resolver: Resolver) -> tuple[str | None, Found]:
    """The numeric form of an address; None (with a diagnostic, if it is wrong) otherwise."""
    text, span = address.text, address.span
    if address.kind is ast.AddressKind.ZERO:
        return "0.0.0.0", []
    if address.kind is ast.AddressKind.IPV4 and _plain_ipv4(text):
        return text, []
    if address.kind in (ast.AddressKind.IPV4, ast.AddressKind.IPV6):
        try:
            return str(ipaddress.ip_address(text)), []
        except ValueError:
            hint = None
            if address.kind is ast.AddressKind.IPV4:
                hint = "four numbers 0..255 without leading zeros, e.g. 10.0.0.1"
            return None, [make("E002", f"'{text}' is not a valid IP address", span, hint=hint)]
    labels = text.split(".")
    why = None
    if len(text) > 253 or any(len(label) > 63 for label in labels):
        why = "labels are at most 63 characters, names at most 253"
    elif any(label.startswith("-") for label in labels):
        why = "a label may not begin with '-' (rinetd 0.73 refuses the line as a syntax error)"
    if why is not None:
        return None, [make("E003", f"'{text}' is not a valid host name", span, hint=why)]
    numeric = resolver.resolve(text)
    if numeric is None and resolver.enabled:
        problem = make(
            "E004",
            f"host name '{text}' does not resolve",
            span,
            hint="rinetd resolves names at start; check the name, "
            "or use --no-resolve where the production DNS is not reachable",
        )
        return None, [problem]
    return numeric, []


def _port(port: ast.Port) -> tuple[int | None, Found]:
    if port.text.isdigit():
        number = _bounded(port.text, 65535)
        if number:
            return number, []
        problem = make(
            "E006",
            f"port {_shown(port.text)} is out of range",
            port.span,
            hint="ports are 1..65535 (rinetd 0.73 would silently use another port)",
        )
        return None, [problem]
    service = service_port(port.text, port.protocol)
    if service is not None:
        return service, []
    other = "udp" if port.protocol == "tcp" else "tcp"
    hint = (
        f"'{port.text}' is a {other} service: add /{other} or use its number"
        if service_port(port.text, other)
        else "use a port number or a name from /etc/services"
    )
    return None, [
        make("E005", f"unknown {port.protocol} service '{port.text}'", port.span, hint=hint)
    ]


# -- binds across rules --------------------------------------------------------


def _bind_key(bind: Endpoint) -> str:
    return bind.address or bind.host


@dataclass
class _Port:
    """The binds of one port and protocol seen so far, looked up by what they collide with:
    each new bind is checked in constant time, so 10,000 rules on one port cost what
    10,000 on different ports do."""

    by_address: dict[str, tuple[int, _RuleDraft]] = field(default_factory=dict)
    first_address: tuple[int, _RuleDraft] | None = None  # numeric, either family
    first_ipv4: tuple[int, _RuleDraft] | None = None  # 0.0.0.0 included
    first_any4: tuple[int, _RuleDraft] | None = None  # 0.0.0.0
    first_any6: tuple[int, _RuleDraft] | None = None  # ::

    def collision(self, bind: Endpoint) -> tuple[_RuleDraft, str] | None:
        """The first earlier bind this one cannot share its port with, and why."""
        key, address = _bind_key(bind), bind.address
        candidates = [self.by_address.get(key)]
        if address == "::":  # dual-stack: takes the port on every address of both families
            candidates.append(self.first_any4 if bind.protocol == "udp" else self.first_address)
        elif address == "0.0.0.0":
            candidates.append(self.first_any6)
            if bind.protocol == "tcp":
                candidates.append(self.first_ipv4)
        elif address is not None and bind.protocol == "tcp":
            # UDP gives each datagram to the most specific socket, so there a wildcard and
            # a specific address share a port (as 0.73 does); TCP cannot.
            candidates.append(self.first_any6)
            if ":" not in address:
                candidates.append(self.first_any4)
        found = [c for c in candidates if c is not None]
        if not found:
            return None
        draft = min(found, key=lambda c: c[0])[1]
        assert draft.bind is not None
        return draft, "duplicate" if _bind_key(draft.bind) == key else "overlap"

    def add(self, index: int, bind: Endpoint, draft: _RuleDraft) -> None:
        entry, address = (index, draft), bind.address
        self.by_address.setdefault(_bind_key(bind), entry)
        if address is None:
            return
        self.first_address = self.first_address or entry
        if ":" not in address:
            self.first_ipv4 = self.first_ipv4 or entry
        if address == "0.0.0.0":
            self.first_any4 = self.first_any4 or entry
        elif address == "::":
            self.first_any6 = self.first_any6 or entry


def _collision(draft: _RuleDraft, bind: Endpoint, earlier: _RuleDraft, why: str) -> Diagnostic:
    here, there = _bind_span(draft.node), _bind_span(earlier.node)
    written = f"{bind.host} {bind.port}/{bind.protocol}"
    if why == "duplicate":
        return make(
            "E010",
            f"{written} is bound twice",
            here,
            hint="remove one of the two rules",
            related=(Related(there, "first bound here"),),
        )
    return make(
        "E011",
        f"{written} overlaps the bind of line {there.line}",
        here,
        hint="a wildcard address (0, 0.0.0.0, ::) takes the port on every "
        "address; use distinct ports or specific addresses",
        related=(Related(there, "this bind takes the same port"),),
    )


def _check_binds(
    drafts: list[_RuleDraft], metrics: tuple[ast.MetricsLine, Endpoint] | None
) -> Found:
    """E010/E011: two rules that cannot both have their listening socket; E019: the
    metrics endpoint where a rule listens."""
    found: Found = []
    ports: dict[tuple[str, int], _Port] = {}
    for index, draft in enumerate(drafts):
        bind = draft.bind
        if bind is None:
            continue
        port = ports.setdefault((bind.protocol, bind.port), _Port())
        collision = port.collision(bind)
        if collision is not None:
            found.append(_collision(draft, bind, *collision))
        port.add(index, bind, draft)
    if metrics is not None:
        node, endpoint = metrics
        collision = ports.get(("tcp", endpoint.port), _Port()).collision(endpoint)
        if collision is not None:
            there = _bind_span(collision[0].node)
            found.append(
                make(
                    "E019",
                    f"metrics {endpoint.host} {endpoint.port} takes a port a rule binds",
                    node.span,
                    hint="use another port or address for the metrics endpoint",
                    related=(Related(there, "this rule binds it"),),
                )
            )
    return found


def _bind_span(node: ast.RuleLine | ast.BrokenRule) -> Span:
    assert node.bind_address is not None and node.bind_port is not None
    return Span(node.span.line, node.bind_address.span.column, node.bind_port.span.end_column)


# -- access patterns -----------------------------------------------------------


def _families(draft: _RuleDraft) -> set[int]:
    """The address families of the clients a rule's listener sees."""
    if draft.bind is None or draft.bind.address is None:
        return set()
    return {_family(draft.bind.address)}


def _never_matches(pattern: str, family: int) -> str | None:
    """Why ``pattern`` can never match a client of ``family``'s text form, or None (also
    for the patterns that match nothing at all, which have their own warning)."""
    if _matches_nothing(pattern) is not None:
        return None
    # IPv6 text has only hex digits before its first ':'.
    head = pattern.split("*")[0].split("?")[0].split(":")[0]
    if family == 4 and ":" in pattern:
        return "IPv4 clients have no ':' in their address"
    if family == 6 and ("." in head or not (_GLOBS | {":"}) & set(pattern)):
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


def _check_patterns(drafts: list[_RuleDraft], global_access: list[ast.Access]) -> Found:
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


def _check_reach(drafts: list[_RuleDraft], global_access: list[ast.Access]) -> Found:
    """W102: rules that the global access lines close to every client they allow."""
    for node in global_access:
        if node.kind == "deny" and set(node.pattern) == {"*"} and drafts:
            message = f"'deny {node.pattern}' rejects every client: no rule can be reached"
            return [make("W102", message, node.span)]
    rules = _access(global_access)
    found: Found = []
    for draft in drafts:
        allows = [node for node in draft.access if node.kind == "allow"]
        if (
            isinstance(draft.node, ast.BrokenRule)
            or not allows
            or any(_GLOBS & set(node.pattern) for node in allows)
        ):
            continue
        if all(verdict(rules, (), node.pattern) != "allowed" for node in allows):
            found.append(
                make(
                    "W102",
                    "every client this rule allows is rejected by the global access rules",
                    _bind_span(draft.node),
                    related=tuple(
                        Related(node.span, "allowed here, rejected globally") for node in allows
                    ),
                )
            )
    return found


# -- how rinetd 0.73 reads an address ---------------------------------------------

_LEADING_QUAD = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def _misread_by_073(text: str) -> str | None:
    """What 0.73 takes ``text`` for, when it reads a shorter address than is written."""
    quad = _LEADING_QUAD.match(text)
    if quad and quad.end() < len(text):
        return quad.group()
    if text.startswith("0") and text != "0" and not (quad and quad.end() == len(text)):
        return "0"
    return None


def _check_073_reading(rules: list[ast.RuleLine | ast.BrokenRule]) -> Found:
    """W110: addresses valid here that 0.73 reads as a bare `0` or a leading dotted quad
    followed by garbage, so it refuses to start."""
    found: Found = []
    for node in rules:
        if not isinstance(node, ast.RuleLine):
            continue
        written = [
            (node.bind_address.text, node.bind_address.span),
            (node.connect_address.text, node.connect_address.span),
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


# -- the extended language's global statements -------------------------------------


def _check_settings(nodes: list[ast.SettingLine]) -> tuple[tuple[GlobalOption, ...], Found]:
    """E007/E013 values out of range or not a word of the setting; W104 repeats."""
    found: Found = []
    settings = []
    earlier: dict[str, ast.SettingLine] = {}
    for node in nodes:
        if node.name in earlier:
            found.append(
                make(
                    "W104",
                    f"{node.name} is set again: this one wins",
                    node.span,
                    hint=f"keep one {node.name} line",
                    related=(
                        Related(earlier[node.name].span, f"the earlier {node.name}, ignored"),
                    ),
                )
            )
        earlier[node.name] = node
        value, problems = _option_value(node.name, node.value, node.value_span)
        found += problems
        if value is not None:
            settings.append(GlobalOption(node.name, value, node.span.line))
    return tuple(settings), found


def _check_metrics(
    nodes: list[ast.MetricsLine], resolver: Resolver
) -> tuple[tuple[ast.MetricsLine, Endpoint] | None, Found]:
    """The metrics endpoint (the last statement wins, W104), checked as a bind is."""
    found: Found = []
    for before, now in itertools.pairwise(nodes):
        found.append(
            make(
                "W104",
                "metrics is set again: this one wins",
                now.span,
                hint="keep one metrics line",
                related=(Related(before.span, "the earlier metrics, ignored"),),
            )
        )
    if not nodes:
        return None, found
    node = nodes[-1]
    if node.port.protocol != "tcp":
        found.append(
            make(
                "E013",
                "metrics is served over tcp",
                node.port.span,
                hint=f"write the port without /{node.port.protocol}",
            )
        )
        return None, found
    endpoint, problems = _endpoint(node.address, node.port, resolver)
    found += problems
    return (None if endpoint is None else (node, endpoint)), found


# -- the C rinetd's language ----------------------------------------------------------

# Diagnostics of lines that rinetd 0.73 reads otherwise than rinetd-run does.
_READ_OTHERWISE_BY_073 = frozenset({"W105", "W110"})


def _extensions(config: ast.Config) -> Found:
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
        elif isinstance(statement, ast.RuleLine):
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


def for_073(found: Sequence[Diagnostic]) -> Found:
    """The diagnostics of a file meant for the C rinetd 0.73: the warnings about lines it
    reads otherwise than rinetd-run become errors (its extensions are E014 already)."""
    return [
        make("E014", f"not for rinetd 0.73: {d.message}", d.span, hint=d.hint)
        if d.code in _READ_OTHERWISE_BY_073
        else d
        for d in found
    ]


# -- settings --------------------------------------------------------------------


def _check_files(scopes: _Scopes) -> Found:
    """W104 repeated settings, W107 quoted file names, W109 logcommon without a log."""
    found: Found = []
    named: list[tuple[str, Sequence[ast.LogFile | ast.PidLogFile]]] = [
        ("logfile", scopes.logfiles),
        ("pidlogfile", scopes.pidfiles),
    ]
    for keyword, nodes in named:
        for before, now in itertools.pairwise(nodes):
            found.append(
                make(
                    "W104",
                    f"{keyword} is set again: this one wins",
                    now.span,
                    hint=f"keep one {keyword} line",
                    related=(Related(before.span, f"the earlier {keyword}, ignored"),),
                )
            )
        for node in nodes:
            if node.path.startswith('"'):
                found.append(
                    make(
                        "W107",
                        f"rinetd 0.73 keeps the quotes: the file is named {node.path} "
                        "with the quotes",
                        node.span,
                        hint="write the file name without quotes "
                        "(0.73 cannot name files with blanks)",
                    )
                )
    formats: list[tuple[str, ast.LogCommon | ast.LogJson]] = [
        *(("logcommon", n) for n in scopes.logcommons),
        *(("logjson", n) for n in scopes.logjsons),
    ]
    if formats and not scopes.logfiles:
        keyword, first = min(formats, key=lambda f: f[1].span)
        found.append(
            make(
                "W109",
                f"{keyword} has no effect without a logfile",
                first.span,
                hint="add `logfile /var/log/rinetd.log`",
            )
        )
    if scopes.logjsons and scopes.logcommons:
        found.append(
            make(
                "E018",
                "logjson and logcommon choose two log formats",
                scopes.logjsons[0].span,
                hint="keep one of them",
                related=(Related(scopes.logcommons[0].span, "logcommon is here"),),
            )
        )
    return found


def _check_not_empty(config: ast.Config, drafts: list[_RuleDraft], last_line: int | None) -> Found:
    """W106: a file without rules forwards nothing (unless a broken line was meant as one);
    said on the top file's last line (``last_line`` of the text, when includes follow it)."""
    if drafts or config.broken:
        return []
    last = max(last_line or len(config.lines), 1)
    return [make("W106", "the configuration has no forwarding rules", Span(last, 1, 2))]
