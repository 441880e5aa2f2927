"""Rule set -> canonical rinetd.conf, the inverse of compiling.

Every item is written on the line it came from (blank lines fill the gaps
left by comments), so compiling the output gives back the very same rule set,
source lines included.  A rule set compiled from several files (`include`)
becomes one file, its items in the order the includes read them.
"""

from __future__ import annotations

from rinetd_run.options import BY_NAME, quote
from rinetd_run.ruleset import (
    DEFAULT_TIMEOUT,
    AccessRule,
    Endpoint,
    Member,
    Rule,
    RuleSet,
    SourceFile,
)

__all__ = ["format_ruleset"]


def _port(endpoint: Endpoint) -> str:
    port = endpoint.service or str(endpoint.port)
    return port if endpoint.protocol == "tcp" else f"{port}/{endpoint.protocol}"


def _connect(rule: Rule) -> list[str]:
    if rule.pool is None:
        return [rule.connect.host, _port(rule.connect)]
    protocol = rule.connect.protocol
    return [f"@{rule.pool}" + ("" if protocol == rule.bind.protocol else f"/{protocol}")]


def _member(pool: str, member: Member) -> str:
    words = ["pool", pool, member.host, member.service or str(member.port)]
    options = [f"weight={member.weight}"] if member.weight != 1 else []
    options += ["backup"] if member.backup else []
    if member.max_connections:
        options.append(f"max-connections={member.max_connections}")
    if options:
        words.append("[" + ", ".join(options) + "]")
    return " ".join(words)


def _rule(rule: Rule) -> str:
    words = [rule.bind.host, _port(rule.bind), *_connect(rule)]
    options = []
    if rule.timeout != DEFAULT_TIMEOUT:
        options.append(f"timeout={rule.timeout}")
    if rule.src is not None:
        options.append(f"src={rule.src.host}")
    options += [
        f"{name}={quote(value) if BY_NAME[name].text and isinstance(value, str) else value}"
        for name, value in rule.options
    ]
    if options:
        words.append("[" + ", ".join(options) + "]")
    return " ".join(words)


Place = tuple[tuple[int, int], ...]  # where an item is in the text the includes make


def _placer(files: tuple[SourceFile, ...]) -> dict[int, Place]:
    """Each file's place: the include lines (and file indices) that led to it."""
    places: dict[int, Place] = {0: ()}
    for index, file in enumerate(files):
        if file.included_from is not None:
            parent, line = file.included_from
            places[index] = (*places[parent], (line, index))
    return places


def _access(entries: tuple[AccessRule, ...]) -> list[tuple[int, int, str]]:
    return [(e.file, e.line, f"{e.kind} {e.pattern}") for e in entries]


def format_ruleset(ruleset: RuleSet) -> str:
    """The rinetd.conf text of ``ruleset``, one statement per line, newline-terminated."""
    items = _access(ruleset.access)
    for rule in ruleset.rules:
        items.append((rule.file, rule.line, _rule(rule)))
        items += _access(rule.access)
    log = ruleset.log
    if log.file:
        items.append((log.file.file, log.file.line, f"logfile {log.file.path}"))
    if ruleset.pidfile:
        pidfile = ruleset.pidfile
        items.append((pidfile.file, pidfile.line, f"pidlogfile {pidfile.path}"))
    if log.format_line is not None:
        items.append((log.format_file, log.format_line, f"log{log.format}"))
    items += [(o.file, o.line, f"{o.name} {o.value}") for o in ruleset.settings]
    items += [(m.file, m.line, _member(p.name, m)) for p in ruleset.pools for m in p.members]
    if ruleset.metrics is not None:
        metrics, endpoint = ruleset.metrics, ruleset.metrics.endpoint
        items.append((metrics.file, metrics.line, f"metrics {endpoint.host} {_port(endpoint)}"))
    lines: list[str] = []
    if len(ruleset.files) > 1:
        places = _placer(ruleset.files)
        ordered = sorted(items, key=lambda item: (*places[item[0]], (item[1], -1)))
        return "".join(text + "\n" for _file, _line, text in ordered)
    for _file, line, text in sorted(items):
        lines.extend([""] * (line - 1 - len(lines)))
        lines.append(text)
    return "".join(line + "\n" for line in lines)
