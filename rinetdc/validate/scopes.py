"""The statements of a configuration sorted into what each check reads, and a rule
as far as it could be understood: the working data every check shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from rinetd_run.ruleset import (
    Endpoint,
    Source,
)

from .. import ast
from ..diagnostics import Diagnostic

__all__ = ["Found", "RuleDraft", "Scopes", "sort_statements"]


Found = list[Diagnostic]


@dataclass
class Scopes:
    """The statements of a file, sorted into what each check reads."""

    rules: list[ast.RuleLine | ast.BrokenRule] = field(default_factory=list)
    rule_access: list[list[ast.Access]] = field(default_factory=list)  # one list per rule
    global_access: list[ast.Access] = field(default_factory=list)
    logfiles: list[ast.LogFile] = field(default_factory=list)
    pidfiles: list[ast.PidLogFile] = field(default_factory=list)
    logcommons: list[ast.LogCommon] = field(default_factory=list)
    logjsons: list[ast.LogJson] = field(default_factory=list)
    settings: list[ast.SettingLine] = field(default_factory=list)
    metrics: list[ast.MetricsLine] = field(default_factory=list)
    includes: list[ast.Include] = field(default_factory=list)
    pools: list[ast.PoolLine] = field(default_factory=list)


@dataclass
class RuleDraft:
    """One rule as far as it could be understood: bind or connect is None if it is wrong."""

    node: ast.RuleLine | ast.BrokenRule
    bind: Endpoint | None
    connect: Endpoint | None
    timeout: int
    src: Source | None
    access: list[ast.Access]
    options: dict[str, int | str] = field(default_factory=dict)
    pool: str | None = None  # `@NAME`: connect is then a placeholder of `@NAME`, port 0


# Where each kind of statement outside rules and access lines goes.
_LISTS: dict[type, str] = {
    ast.LogFile: "logfiles",
    ast.PidLogFile: "pidfiles",
    ast.LogCommon: "logcommons",
    ast.LogJson: "logjsons",
    ast.SettingLine: "settings",
    ast.MetricsLine: "metrics",
    ast.Include: "includes",
    ast.PoolLine: "pools",
}


def sort_statements(config: ast.Config) -> Scopes:
    """Access lines belong to the rule above them; those above every rule are global."""
    scopes = Scopes()
    for statement in config.statements:
        if isinstance(statement, (ast.RuleLine, ast.BrokenRule)):
            scopes.rules.append(statement)
            scopes.rule_access.append([])
        elif isinstance(statement, ast.Access):
            (scopes.rule_access[-1] if scopes.rules else scopes.global_access).append(statement)
        else:
            getattr(scopes, _LISTS[type(statement)]).append(statement)
    return scopes
