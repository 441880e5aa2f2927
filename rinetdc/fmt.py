"""Rule set -> canonical rinetd.conf, the inverse of compiling.

Every item is written on the line it came from (blank lines fill the gaps
left by comments), so compiling the output gives back the very same rule set,
source lines included.
"""

from __future__ import annotations

from rinetd_run.ruleset import DEFAULT_TIMEOUT, AccessRule, Endpoint, Rule, RuleSet

__all__ = ["format_ruleset"]


def _port(endpoint: Endpoint) -> str:
    port = endpoint.service or str(endpoint.port)
    return port if endpoint.protocol == "tcp" else f"{port}/{endpoint.protocol}"


def _rule(rule: Rule) -> str:
    words = [rule.bind.host, _port(rule.bind), rule.connect.host, _port(rule.connect)]
    options = []
    if rule.timeout != DEFAULT_TIMEOUT:
        options.append(f"timeout={rule.timeout}")
    if rule.src is not None:
        options.append(f"src={rule.src.host}")
    if options:
        words.append("[" + ", ".join(options) + "]")
    return " ".join(words)


def _access(entries: tuple[AccessRule, ...]) -> list[tuple[int, str]]:
    return [(e.line, f"{e.kind} {e.pattern}") for e in entries]


def format_ruleset(ruleset: RuleSet) -> str:
    """The rinetd.conf text of ``ruleset``, one statement per line, newline-terminated."""
    items = _access(ruleset.access)
    for rule in ruleset.rules:
        items.append((rule.line, _rule(rule)))
        items += _access(rule.access)
    if ruleset.log.file:
        items.append((ruleset.log.file.line, f"logfile {ruleset.log.file.path}"))
    if ruleset.pidfile:
        items.append((ruleset.pidfile.line, f"pidlogfile {ruleset.pidfile.path}"))
    if ruleset.log.common_line is not None:
        items.append((ruleset.log.common_line, "logcommon"))
    lines: list[str] = []
    for line, text in sorted(items):
        lines.extend([""] * (line - 1 - len(lines)))
        lines.append(text)
    return "".join(line + "\n" for line in lines)
