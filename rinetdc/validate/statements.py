"""The statements outside rules: global settings and metrics, log and pid files, an
empty configuration; one helper for the W104 repeat they share."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from rinetd_run.ruleset import (
    Endpoint,
)

from .. import ast
from ..diagnostics import Diagnostic, Place, Related, Span, make, span_at
from ..resolve import Resolver
from .scopes import Found, RuleDraft, Scopes
from .values import read_endpoint, read_option_value

__all__ = ["check_files", "check_metrics", "check_not_empty", "check_settings"]


def _repeated(keyword: str, here: Span, earlier: Span) -> Diagnostic:
    """W104: a statement set again; the last one wins."""
    return make(
        "W104",
        f"{keyword} is set again: this one wins",
        here,
        hint=f"keep one {keyword} line",
        related=(Related(earlier, f"the earlier {keyword}, ignored"),),
    )


def check_settings(
    nodes: list[ast.SettingLine],
) -> tuple[list[tuple[ast.SettingLine, int | str]], Found]:
    """E007/E013 values out of range or not a word of the setting; W104 repeats."""
    found: Found = []
    settings: list[tuple[ast.SettingLine, int | str]] = []
    earlier: dict[str, ast.SettingLine] = {}
    for node in nodes:
        if node.name in earlier:
            found.append(_repeated(node.name, node.span, earlier[node.name].span))
        earlier[node.name] = node
        value, problems = read_option_value(node.name, node.value, node.value_span, statement=True)
        found += problems
        if value is not None:
            settings.append((node, value))
    return settings, found


def check_metrics(
    nodes: list[ast.MetricsLine], resolver: Resolver
) -> tuple[tuple[ast.MetricsLine, Endpoint] | None, Found]:
    """The metrics endpoint (the last statement wins, W104), checked as a bind is."""
    found: Found = []
    for before, now in itertools.pairwise(nodes):
        found.append(_repeated("metrics", now.span, before.span))
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
    endpoint, problems = read_endpoint(node.address, node.port, resolver)
    found += problems
    return (None if endpoint is None else (node, endpoint)), found


def check_files(scopes: Scopes) -> Found:
    """W104 repeated settings, W107 quoted file names, W109 logcommon without a log."""
    found: Found = []
    named: list[tuple[str, Sequence[ast.LogFile | ast.PidLogFile]]] = [
        ("logfile", scopes.logfiles),
        ("pidlogfile", scopes.pidfiles),
    ]
    for keyword, nodes in named:
        for before, now in itertools.pairwise(nodes):
            found.append(_repeated(keyword, now.span, before.span))
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


def check_not_empty(
    config: ast.Config, drafts: list[RuleDraft], last_line: int | None, place: Place
) -> Found:
    """W106: a file without rules forwards nothing (unless a broken line was meant as one);
    said on the top file's last line (``last_line`` of the text, when includes follow it)."""
    if drafts or config.broken:
        return []
    last = max(last_line or len(config.lines), 1)
    return [make("W106", "the configuration has no forwarding rules", span_at(place, last, 1, 2))]
