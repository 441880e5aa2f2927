"""Which rules the kernel data plane (``dataplane kernel``) may forward: those nftables
forwards as rinetd-run would, and for each other rule the one reason it stays in user
space.  The compiler writes the reason into the rule set (``user_space``) and
``rinetdc check --explain`` says it; rinetd-run asks again once host names are
resolved.  Pure: no I/O.

What the kernel does differently even for a rule it takes (the client's own connect
timeout instead of ``connect-timeout``, the endpoints' own keepalive, conntrack's
table size instead of ``max-udp-connections``) is said in the README; an option set
to anything but its default keeps the rule in user space until the table has its
equivalent.
"""

from __future__ import annotations

import ipaddress

from .kernel_patterns import ipv4_terms
from .options import BY_NAME, applies
from .ruleset import Endpoint, Rule, RuleSet, Source, effective

__all__ = ["dataplane_of", "kernel_rules", "user_space_reason"]

# Options the kernel path takes at any value: keepalive is the endpoints' own (README),
# and dns-refresh moves the table's DNAT to the name's new first address; any other
# value of an option (but these) is not in the table yet.
_ANY_VALUE = {"keepalive", "dataplane", "dns-refresh"}
# Counted by nftables (ct count): over one, a client is not DNAT'd and rinetd-run's
# listener refuses it; so every client that reaches the listener must come through the
# table, which a loopback client of a wildcard bind does not.
_LIMITS = {"max-connections", "max-connections-per-client"}
# Options whose meaning the kernel cannot keep, and why (README: the kernel data plane).
_WHY_NOT = {
    "connect-timeout": "the kernel cannot give up a backend connect for the client",
    "idle-timeout": (
        "conntrack would forget an idle connection silently; rinetd-run closes both "
        "sides and logs done-idle-timeout"
    ),
    "max-udp-connections": "nftables cannot end a rule's least recently used session",
}


def _address(endpoint: Endpoint | Source) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The bind, connect or src address, when known (a host name before it is resolved
    is not)."""
    text = endpoint.address or endpoint.host
    if text == "0":
        return ipaddress.IPv4Address(0)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _option_reason(ruleset: RuleSet, rule: Rule) -> str | None:
    options = effective(ruleset, rule)
    if options.proxy_protocol is not None:
        return "proxy-protocol: rinetd-run writes the header"
    for option in BY_NAME.values():
        if option.scope == "member" or option.pool:
            continue  # a pool rule has its reason already; others do not use them
        if option.name in _ANY_VALUE or not applies(option.name, rule.bind.protocol):
            continue
        value = getattr(options, option.field)
        if value == option.default:
            continue
        if option.name not in _LIMITS:
            why = _WHY_NOT.get(option.name, "not in the kernel table")
            return f"{option.name}={value}: {why}"
        bind = _address(rule.bind)
        if bind is not None and int(bind) == 0:  # 0.0.0.0 or ::
            return (
                f"{option.name}={value} on a {rule.bind.host} bind: the kernel would not "
                "count clients that reach rinetd-run's listener (on the host to a loopback "
                "address, or IPv4 clients of ::)"
            )
    return None


def _address_reason(rule: Rule) -> str | None:
    bind, connect = _address(rule.bind), _address(rule.connect)
    source = _address(rule.src) if rule.src is not None else None
    for name, address in (("bind", bind), ("connect", connect), ("src", source)):
        if address is not None and address.is_loopback:
            return f"a loopback {name} address: the kernel routes 127.0.0.0/8 and ::1 on lo only"
    if bind is not None and connect is not None and bind.version != connect.version:
        return "the bind and connect addresses are of different IP versions"
    # A :: bind with an IPv6 backend: the kernel takes its IPv6 clients, rinetd-run's
    # listener the IPv4 ones (the kernel does not translate between versions).
    if source is not None and connect is not None and source.version != connect.version:
        return "the src and connect addresses are of different IP versions"
    return None


def _access_reason(ruleset: RuleSet, rule: Rule) -> str | None:
    patterns = [entry.pattern for entry in (*ruleset.access, *rule.access)]
    if not patterns:
        return None
    bind = _address(rule.bind)
    if bind is None:
        return None  # known once resolved
    if bind.version == 6:
        return "access patterns on an IPv6 bind: globs over its text have no exact nftables match"
    for pattern in patterns:
        if ipv4_terms(pattern) is None:
            return f"access pattern {pattern} needs too many nftables matches"
    return None


def user_space_reason(ruleset: RuleSet, rule: Rule) -> str | None:
    """Why ``rule`` needs user space under ``dataplane kernel``; None when nftables can
    forward it as rinetd-run would, as far as what is known (names unresolved pass)."""
    if rule.pool is not None:
        return (
            f"forwards to pool {rule.pool}: a connect that fails must move to the next "
            "member, which a DNAT cannot do"
        )
    if rule.bind.protocol != rule.connect.protocol:
        return "the bind and connect protocols differ"
    return _option_reason(ruleset, rule) or _address_reason(rule) or _access_reason(ruleset, rule)


def dataplane_of(ruleset: RuleSet, override: str | None) -> str:
    """``user`` or ``kernel``: ``--dataplane`` when given, else the rule set's statement."""
    return override or str(ruleset.global_value("dataplane"))


def kernel_rules(ruleset: RuleSet, dataplane: str) -> tuple[Rule, ...]:
    """The rules nftables forwards: none under ``dataplane user``; under ``kernel``,
    those with no reason of their own, resolved (a name the kernel cannot match)."""
    if dataplane != "kernel":
        return ()
    return tuple(
        rule
        for rule in ruleset.rules
        if rule.user_space is None
        and _address(rule.bind) is not None
        and _address(rule.connect) is not None
        and user_space_reason(ruleset, rule) is None
    )
