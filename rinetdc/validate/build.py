"""The rule set model built from the checked drafts, once, with everything in it: each
item carries its own file and line, given by ``place`` (whole-text line -> file, line)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rinetd_run.ruleset import (
    AccessRule,
    Endpoint,
    GlobalOption,
    Log,
    Metrics,
    NamedFile,
    Rule,
    RuleSet,
    SourceFile,
)

from .. import ast
from .scopes import RuleDraft, Scopes

__all__ = ["Place", "access_rules", "build_ruleset", "one_file"]

Place = Callable[[int], tuple[int, int]]  # a line of the whole text -> (file, line in it)


def one_file(line: int) -> tuple[int, int]:
    """The place of a line of a configuration without includes."""
    return 0, line


def access_rules(nodes: list[ast.Access], place: Place = one_file) -> tuple[AccessRule, ...]:
    return tuple(
        AccessRule(node.kind, node.pattern, line, file)
        for node in nodes
        for file, line in [place(node.span.line)]
    )


def _named_file(nodes: Sequence[ast.LogFile | ast.PidLogFile], place: Place) -> NamedFile | None:
    if not nodes:
        return None
    file, line = place(nodes[-1].span.line)  # the last wins
    return NamedFile(nodes[-1].path, line, file)


def _log(scopes: Scopes, place: Place) -> Log:
    # logjson with logcommon is an error (E018), so at most one format is chosen here.
    chosen = (scopes.logjsons or scopes.logcommons or [None])[0]
    file, line = (0, None) if chosen is None else place(chosen.span.line)
    return Log(
        file=_named_file(scopes.logfiles, place),
        format="tab" if chosen is None else "json" if scopes.logjsons else "common",
        format_line=line,
        format_file=file,
    )


def _rule(draft: RuleDraft, bind: Endpoint, connect: Endpoint, place: Place) -> Rule:
    file, line = place(draft.node.span.line)
    return Rule(
        line=line,
        bind=bind,
        connect=connect,
        timeout=draft.timeout,
        src=draft.src,
        access=access_rules(draft.access, place),
        options=tuple(sorted(draft.options.items())),
        file=file,
    )


def build_ruleset(
    drafts: list[RuleDraft],
    scopes: Scopes,
    settings: list[tuple[ast.SettingLine, int | str]],
    metrics: tuple[ast.MetricsLine, Endpoint] | None,
    *,
    resolved: bool,
    place: Place = one_file,
    files: tuple[SourceFile, ...] = (),
) -> RuleSet:
    """The rule set of the rules that could be understood, with the global statements and
    the files they came from."""
    metrics_model = None
    if metrics is not None:
        file, line = place(metrics[0].span.line)
        metrics_model = Metrics(metrics[1], line, file)
    return RuleSet(
        resolved=resolved,
        access=access_rules(scopes.global_access, place),
        log=_log(scopes, place),
        pidfile=_named_file(scopes.pidfiles, place),
        rules=tuple(
            _rule(d, d.bind, d.connect, place)
            for d in drafts
            if d.bind is not None and d.connect is not None
        ),
        settings=tuple(
            GlobalOption(node.name, value, line, file)
            for node, value in settings
            for file, line in [place(node.span.line)]
        ),
        metrics=metrics_model,
        files=files,
    )
