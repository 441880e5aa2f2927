"""Rule set -> canonical rinetd.conf, the inverse of compiling.

Every item is written on the line it came from (blank lines fill the gaps
left by comments), so compiling the output gives back the very same rule set,
source lines included.
"""

from __future__ import annotations

from . import model

__all__ = ["format_ruleset"]


def _port(endpoint: model.Endpoint) -> str:
    port = endpoint.service or str(endpoint.port)
    return port if endpoint.protocol == "tcp" else f"{port}/{endpoint.protocol}"


def _rule(rule: model.Rule) -> str:
    words = [rule.bind.host, _port(rule.bind), rule.connect.host, _port(rule.connect)]
    options = []
    if rule.timeout != model.DEFAULT_TIMEOUT:
        options.append(f"timeout={rule.timeout}")
    if rule.src_host is not None:
        options.append(f"src={rule.src_host}")
    if options:
        words.append("[" + ", ".join(options) + "]")
    return " ".join(words)


def format_ruleset(ruleset: model.RuleSet) -> str:
    """The rinetd.conf text of ``ruleset``, one statement per line, newline-terminated."""
    items: list[tuple[int, str]] = [(e.line, f"{e.kind} {e.pattern}") for e in ruleset.access]
    for rule in ruleset.rules:
        items.append((rule.line, _rule(rule)))
        items.extend((e.line, f"{e.kind} {e.pattern}") for e in rule.access)
    if ruleset.logfile:
        items.append((ruleset.logfile.line, f"logfile {ruleset.logfile.value}"))
    if ruleset.pidfile:
        items.append((ruleset.pidfile.line, f"pidlogfile {ruleset.pidfile.value}"))
    if ruleset.logcommon is not None:
        items.append((ruleset.logcommon, "logcommon"))
    lines: list[str] = []
    for line, text in sorted(items):
        lines.extend([""] * (line - 1 - len(lines)))
        lines.append(text)
    return "".join(line + "\n" for line in lines)
