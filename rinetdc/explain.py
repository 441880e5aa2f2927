"""``rinetdc check --explain``: for each rule, whether ``dataplane kernel`` has nftables
forward it, or why it stays in rinetd-run (``kernel_choice`` decides; the compiled
rule set records the same reason).  Pure: text out."""

from __future__ import annotations

from rinetd_run.kernel_choice import user_space_reason
from rinetd_run.ruleset import Endpoint, Rule, RuleSet

from .include import Sources
from .visible import visible

__all__ = ["explain"]


def _side(endpoint: Endpoint) -> str:
    if endpoint.host.startswith("@"):  # a pool
        return f"{endpoint.host}/{endpoint.protocol}"
    return f"{endpoint.host} {endpoint.port}/{endpoint.protocol}"


def _verdict(ruleset: RuleSet, rule: Rule, dataplane: str) -> str:
    reason = user_space_reason(ruleset, rule)
    if reason is not None:
        return f"user space: {reason}"
    if dataplane != "kernel":
        return "user space: dataplane user (the kernel could forward it)"
    names = [e.host for e in (rule.bind, rule.connect) if e.address is None and e.host != "0"]
    if names:
        verb = "resolves to an address" if len(names) == 1 else "resolve to addresses"
        return f"kernel, once {' and '.join(names)} {verb} the kernel takes"
    if (rule.bind.address or rule.bind.host) == "::":
        return "kernel for IPv6 clients; IPv4 clients by rinetd-run"
    return "kernel"


def explain(ruleset: RuleSet, sources: Sources) -> str:
    """One line per rule, in file order: where it is, what it forwards, and where."""
    dataplane = str(ruleset.global_value("dataplane"))
    lines = [f"dataplane {dataplane}"]
    for rule in ruleset.rules:
        where = f"{visible(sources.names[rule.file])}:{rule.line}"
        what = f"{_side(rule.bind)} -> {_side(rule.connect)}"
        lines.append(f"{where}: {visible(what)}: {_verdict(ruleset, rule, dataplane)}")
    return "\n".join(lines) + "\n"
