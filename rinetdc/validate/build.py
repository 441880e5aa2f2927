"""The rule set model built from the checked drafts, once, with everything in it: each
item takes its file and line from its statement's span."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from rinetd_run.kernel_choice import user_space_reason
from rinetd_run.ruleset import (
    AccessRule,
    Endpoint,
    GlobalOption,
    Log,
    Metrics,
    NamedFile,
    Pool,
    Rule,
    RuleSet,
    SourceFile,
)

from .. import ast
from .scopes import RuleDraft, Scopes

__all__ = ["access_rules", "build_ruleset"]


def access_rules(nodes: list[ast.Access]) -> tuple[AccessRule, ...]:
    return tuple(
        AccessRule(node.kind, node.pattern, node.span.line, node.span.file) for node in nodes
    )


def _named_file(nodes: Sequence[ast.LogFile | ast.PidLogFile]) -> NamedFile | None:
    if not nodes:
        return None
    span = nodes[-1].span  # the last wins
    return NamedFile(nodes[-1].path, span.line, span.file)


def _log(scopes: Scopes) -> Log:
    # logjson with logcommon is an error (E018), so at most one format is chosen here.
    chosen = (scopes.logjsons or scopes.logcommons or [None])[0]
    file, line = (0, None) if chosen is None else (chosen.span.file, chosen.span.line)
    return Log(
        file=_named_file(scopes.logfiles),
        format="tab" if chosen is None else "json" if scopes.logjsons else "common",
        format_line=line,
        format_file=file,
    )


def _rule(draft: RuleDraft, bind: Endpoint, connect: Endpoint) -> Rule:
    return Rule(
        line=draft.node.span.line,
        bind=bind,
        connect=connect,
        timeout=draft.timeout,
        src=draft.src,
        access=access_rules(draft.access),
        options=tuple(sorted(draft.options.items())),
        file=draft.node.span.file,
        pool=draft.pool,
    )


def build_ruleset(
    drafts: list[RuleDraft],
    scopes: Scopes,
    settings: list[tuple[ast.SettingLine, int | str]],
    metrics: tuple[ast.MetricsLine, Endpoint] | None,
    *,
    resolved: bool,
    files: tuple[SourceFile, ...] = (),
    pools: tuple[Pool, ...] = (),
) -> RuleSet:
    """The rule set of the rules that could be understood, with the global statements and
    the files they came from."""
    metrics_model = None
    if metrics is not None:
        span = metrics[0].span
        metrics_model = Metrics(metrics[1], span.line, span.file)
    built = RuleSet(
        resolved=resolved,
        access=access_rules(scopes.global_access),
        log=_log(scopes),
        pidfile=_named_file(scopes.pidfiles),
        rules=tuple(
            _rule(d, d.bind, d.connect)
            for d in drafts
            if d.bind is not None
            and d.connect is not None
            and (d.pool is None or any(p.name == d.pool and p.members for p in pools))
        ),
        settings=tuple(
            GlobalOption(node.name, value, node.span.line, node.span.file)
            for node, value in settings
        ),
        metrics=metrics_model,
        files=files,
        pools=pools,
    )
    return replace(
        built,
        rules=tuple(
            replace(rule, user_space=user_space_reason(built, rule)) for rule in built.rules
        ),
    )
