"""The rule set model built from the checked drafts, once, with everything in it."""

from __future__ import annotations

from collections.abc import Sequence

from rinetd_run.ruleset import (
    AccessRule,
    Endpoint,
    GlobalOption,
    Log,
    Metrics,
    NamedFile,
    Rule,
    RuleSet,
)

from .. import ast
from .scopes import RuleDraft, Scopes

__all__ = ["access_rules", "build_ruleset"]


def access_rules(nodes: list[ast.Access]) -> tuple[AccessRule, ...]:
    return tuple(AccessRule(node.kind, node.pattern, node.span.line) for node in nodes)


def _named_file(nodes: Sequence[ast.LogFile | ast.PidLogFile]) -> NamedFile | None:
    return NamedFile(nodes[-1].path, nodes[-1].span.line) if nodes else None  # the last wins


def build_ruleset(
    drafts: list[RuleDraft],
    scopes: Scopes,
    settings: tuple[GlobalOption, ...],
    metrics: tuple[ast.MetricsLine, Endpoint] | None,
    *,
    resolved: bool,
) -> RuleSet:
    """The rule set of the rules that could be understood, with the global statements."""
    # logjson with logcommon is an error (E018), so at most one format is chosen here.
    chosen = (scopes.logjsons or scopes.logcommons or [None])[0]
    return RuleSet(
        resolved=resolved,
        access=access_rules(scopes.global_access),
        log=Log(
            file=_named_file(scopes.logfiles),
            format="tab" if chosen is None else "json" if scopes.logjsons else "common",
            format_line=None if chosen is None else chosen.span.line,
        ),
        pidfile=_named_file(scopes.pidfiles),
        rules=tuple(
            Rule(
                line=d.node.span.line,
                bind=d.bind,
                connect=d.connect,
                timeout=d.timeout,
                src=d.src,
                access=access_rules(d.access),
                options=tuple(sorted(d.options.items())),
            )
            for d in drafts
            if d.bind is not None and d.connect is not None
        ),
        settings=settings,
        metrics=None if metrics is None else Metrics(metrics[1], metrics[0].span.line),
    )
