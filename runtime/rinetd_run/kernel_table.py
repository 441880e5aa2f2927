"""The kernel data plane's nftables table, as text for ``nft -f``: the rules that
``kernel_choice`` hands to the kernel, DNAT'd to their backends for the clients their
access lines allow.  Pure: the script is made here, ``kernel_plane`` loads it.

One table, ``inet rinetd_run``, and nothing else is touched.  A client the access
lines refuse is not DNAT'd: it reaches rinetd-run's own listener on the same port,
which refuses and logs it as it always did (one authority for refusals).  Every
connection DNAT'd here carries a conntrack mark of ours; postrouting gives it the
rule's ``src=`` address, or the outgoing interface's (masquerade), so the backend
sees the forwarder as it does in user space.  When rinetd-run had to turn IP
forwarding on, the forward chain lets through only connections with that mark: the
host does not become a router for anything else.  The script replaces the whole
table in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .kernel_patterns import Term, ipv4_terms
from .ruleset import Rule, RuleSet, effective

__all__ = [
    "FAMILY",
    "MARK",
    "MASK",
    "NAME",
    "KernelRule",
    "kernel_rule",
    "read_counters",
    "render",
]

FAMILY, NAME = "inet", "rinetd_run"
MARK, MASK = 0x52520000, 0xFFFF0000  # "RR": the connections this table DNAT'd
_LOOPBACK = {4: "127.0.0.0/8", 6: "::1"}
# The conntrack events our flows raise: what the kernel data plane's log reads (opened,
# TCP state changes, gone), not the others (reply seen, assured, mark...).
_EVENTS = "new,protoinfo,destroy"


@dataclass(frozen=True)
class KernelRule:
    """What the table needs of one rule, numeric."""

    number: int  # 1, 2, ...: chain names and the conntrack mark's low half
    protocol: str  # tcp or udp
    version: int  # 4 or 6
    bind: str | None  # None: any local address (0.0.0.0)
    port: int
    connect: str
    connect_port: int
    src: str | None
    denies: tuple[str, ...]  # global and the rule's: a match is not DNAT'd
    allows: tuple[tuple[str, ...], ...]  # each non-empty list must have a match
    line: int  # the rule's line, in the chain's comment
    most: int = 0  # max-connections: open connections the rule DNATs at most (0: none)
    most_per_client: int = 0  # max-connections-per-client
    timeout: int = 0  # a UDP rule's session timeout (seconds idle); 0 for TCP


def kernel_rule(ruleset: RuleSet, rule: Rule, number: int) -> KernelRule:
    """``rule`` (one ``kernel_choice`` takes, resolved) as the table needs it."""
    bind = rule.bind.address or rule.bind.host
    connect = rule.connect.address or rule.connect.host
    wildcard = bind in ("0", "0.0.0.0", "::")
    lists = (ruleset.access, rule.access)
    options = effective(ruleset, rule)
    return KernelRule(
        number=number,
        protocol=rule.bind.protocol,
        version=6 if ":" in connect else 4,
        bind=None if wildcard else bind,
        port=rule.bind.port,
        connect=connect,
        connect_port=rule.connect.port,
        src=rule.local_address,
        denies=tuple(e.pattern for entries in lists for e in entries if e.kind == "deny"),
        allows=tuple(
            patterns
            for entries in lists
            if (patterns := tuple(e.pattern for e in entries if e.kind == "allow"))
        ),
        line=rule.line,
        most=options.max_connections,
        most_per_client=options.max_connections_per_client,
        timeout=rule.timeout if rule.bind.protocol == "udp" else 0,
    )


def _ip(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def _values(values: frozenset[int]) -> str:
    """An anonymous set of octet values, as ranges: ``{ 10-19, 25 }``."""
    runs: list[str] = []
    ordered = sorted(values)
    start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        runs.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return "{ " + ", ".join(runs) + " }"


def _term(term: Term) -> str:
    """The match of one product of octet sets on the source address (IPv4 header
    bytes 12-15); an octet that takes every value is not matched at all."""
    parts = [
        f"@nh,{96 + 8 * index},8 {_values(values)}"
        for index, values in enumerate(term)
        if len(values) < 256
    ]
    return " ".join(parts)


def _matches(pattern: str) -> list[str]:
    terms = ipv4_terms(pattern)
    assert terms is not None, pattern  # kernel_choice keeps such rules in user space
    return [_term(term) for term in terms]


def _step(match: str, verdict: str) -> str:
    """A statement of a rule's chain; a pattern that matches every address has no match."""
    return f"{match} {verdict}" if match else verdict


def _listener(rule: KernelRule, local: bool) -> str:
    """The packets of a new connection to the rule's bind; for clients on the host
    (``local``), not those to a loopback address (rinetd-run's listener takes them)."""
    ip = _ip(rule.version)
    where = (
        f"{ip} daddr {rule.bind}"
        if rule.bind
        else f"meta nfproto ipv{rule.version} fib daddr type local"
    )
    if local and rule.bind is None:
        where += f" {ip} daddr != {_LOOPBACK[rule.version]}"
    return f"{where} {rule.protocol} dport {rule.port}"


def _rule_chains(rule: KernelRule) -> list[str]:
    chain = f"rule_{rule.number}"
    ip = _ip(rule.version)
    target = rule.connect if rule.version == 4 else f"[{rule.connect}]"
    steps = [_step(match, "return") for pattern in rule.denies for match in _matches(pattern)]
    chains: list[str] = []
    names = [chain] + [f"{chain}_allow_{n}" for n in range(1, len(rule.allows) + 1)]
    nat = f"{chain}_nat"
    for index, patterns in enumerate(rule.allows):
        following = names[index + 1] if index + 1 < len(rule.allows) else nat
        steps += [
            _step(match, f"goto {following}") for pattern in patterns for match in _matches(pattern)
        ]
        steps.append("return")
        chains.append(_chain(names[index], steps, f"line {rule.line}"))
        steps = []
    if not rule.allows:
        steps.append(f"goto {nat}")
        chains.append(_chain(chain, steps, f"line {rule.line}"))
    mark = MARK | rule.number
    # Over a limit, a connection is not DNAT'd: rinetd-run's listener refuses it and
    # logs limit-exceeded (``Binding.kernel_limited``).  ct count counts the open ones.
    limits = []
    if rule.most_per_client:
        limits.append(
            f"add @{chain}_clients {{ {ip} saddr ct count over {rule.most_per_client} }} return"
        )
    if rule.most:
        limits.append(f"ct count over {rule.most} return")
    # A UDP session ends after `timeout=` seconds without a datagram either way, as in
    # user space: conntrack's timeout policy for the flow (not its 30 s / 120 s).
    timeout = f'ct timeout set "{_timeout_name(rule)}" ' if rule.timeout else ""
    nat_steps = [
        *limits,
        f"meta l4proto {rule.protocol} counter ct mark set {mark:#010x} "
        f"ct event set {_EVENTS} {timeout}dnat {ip} to {target}:{rule.connect_port}",
    ]
    chains.append(_chain(nat, nat_steps))
    return chains


def _timeout_name(rule: KernelRule) -> str:
    return f"udp_ipv{rule.version}_{rule.timeout}s"


def _timeouts(rules: Sequence[KernelRule]) -> list[str]:
    """One conntrack timeout policy per UDP session timeout and IP version in use."""
    policies = {}
    for rule in rules:
        if rule.timeout:
            l3 = "ip" if rule.version == 4 else "ip6"
            policies[_timeout_name(rule)] = (
                f"  ct timeout {_timeout_name(rule)} {{ protocol udp; l3proto {l3}; "
                f"policy = {{ unreplied: {rule.timeout}, replied: {rule.timeout} }}; }}"
            )
    return [policies[name] for name in sorted(policies)]


def _sets(rule: KernelRule) -> list[str]:
    """The per-client counts of a rule with max-connections-per-client."""
    if not rule.most_per_client:
        return []
    kind = "ipv4_addr" if rule.version == 4 else "ipv6_addr"
    return [f"  set rule_{rule.number}_clients {{ type {kind}; size 65535; flags dynamic; }}"]


def _chain(name: str, statements: Sequence[str], comment: str = "", hook: str = "") -> str:
    lines = [f"  chain {name} {{"]
    if comment:
        lines.append(f'    comment "{comment}"')
    if hook:
        lines.append(f"    {hook}")
    lines += [f"    {statement}" for statement in statements]
    lines.append("  }")
    return "\n".join(lines)


def render(rules: Sequence[KernelRule], guard: frozenset[int], comment: str) -> str:
    """The whole script: the table made (so that deleting it cannot fail), deleted and
    made again with ``rules``, in one transaction.  ``guard``: the IP versions whose
    forwarding rinetd-run turned on, where only our connections may pass; ``comment``
    is kept on the table (what forwarding was before us)."""
    jumps = [f"{_listener(rule, False)} jump rule_{rule.number}" for rule in rules]
    local_jumps = [f"{_listener(rule, True)} jump rule_{rule.number}" for rule in rules]
    ours = f"ct mark & {MASK:#010x} == {MARK:#010x}"
    translations = [
        f"ct mark {MARK | rule.number:#010x} snat {_ip(rule.version)} to {rule.src}"
        for rule in rules
        if rule.src
    ]
    translations.append(f"{ours} masquerade")
    # Each rule's forwarded packets and bytes, both ways, in a counter of its own: one map
    # lookup a packet, whatever the number of rules.
    counted = ", ".join(f'{MARK | rule.number:#010x} : "rule_{rule.number}"' for rule in rules)
    forward = [f"{ours} counter name ct mark map {{ {counted} }}"] if rules else []
    forward += [f"{ours} accept"]
    forward += [f"meta nfproto ipv{version} drop" for version in sorted(guard)]
    body = [
        f'  comment "{comment}"',
        *_timeouts(rules),
        *(f"  counter rule_{rule.number} {{ }}" for rule in rules),
        _chain(
            "prerouting", jumps, hook="type nat hook prerouting priority dstnat; policy accept;"
        ),
        _chain("output", local_jumps, hook="type nat hook output priority -100; policy accept;"),
        _chain(
            "postrouting",
            translations,
            hook="type nat hook postrouting priority srcnat; policy accept;",
        ),
        _chain("forward", forward, hook="type filter hook forward priority filter; policy accept;"),
    ]
    for rule in rules:
        body += _sets(rule) + _rule_chains(rule)
    return (
        f"table {FAMILY} {NAME}\n"
        f"delete table {FAMILY} {NAME}\n"
        f"table {FAMILY} {NAME} {{\n" + "\n".join(body) + "\n}\n"
    )


def read_counters(listing: str) -> dict[int, tuple[int, int]]:
    """Rule number -> (packets, bytes) forwarded, from `nft -j list counters` of our table;
    what is not a counter of ours is passed over."""
    found: dict[int, tuple[int, int]] = {}
    try:
        items = json.loads(listing).get("nftables", [])
    except (ValueError, AttributeError):
        return found
    for item in items if isinstance(items, list) else []:
        counter = item.get("counter") if isinstance(item, dict) else None
        if not isinstance(counter, dict) or counter.get("table") != NAME:
            continue
        name, packets, size = counter.get("name"), counter.get("packets"), counter.get("bytes")
        if (
            isinstance(name, str)
            and name.startswith("rule_")
            and name[5:].isdigit()
            and type(packets) is int
            and type(size) is int
        ):
            found[int(name[5:])] = (packets, size)
    return found
