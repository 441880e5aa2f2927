"""Typed AST -> the rule set model, with every error and warning found on the way.

A pure function of the AST and a resolver: nothing here prints or exits.
``validate`` sorts the statements into their scopes, then runs the checks one
after the other, each in a module of its own that returns its diagnostics:
``rule`` (one rule, with the value readers of ``values``), ``binds`` (rules
against each other), ``access`` (patterns), ``statements`` (everything outside
rules), ``rinetd073`` (the C rinetd as a target); ``build`` makes the rule set.
The checks follow rinetd 0.73's meaning of each statement (reference section
1) and add the ones 0.73 lacks: port ranges, bind collisions, patterns that can
never match, settings that do nothing.
"""

from __future__ import annotations

from rinetd_run.ruleset import RuleSet, SourceFile

from .. import ast
from ..diagnostics import Diagnostic, Place, one_file
from ..resolve import Resolver
from .access import check_patterns, check_reach
from .binds import check_binds
from .build import build_ruleset
from .pools import check_pool_rules, check_pools
from .rinetd073 import check_073_reading
from .rule import check_rule
from .scopes import Found, sort_statements
from .statements import check_files, check_metrics, check_not_empty, check_settings

__all__ = ["validate"]


def validate(
    config: ast.Config,
    resolver: Resolver,
    last_line: int | None = None,
    place: Place = one_file,
    files: tuple[SourceFile, ...] = (),
) -> tuple[RuleSet, list[Diagnostic]]:
    """Check ``config`` as rinetd-run reads it; return its rule set and the diagnostics,
    in the order of the checks (``check`` applies the target's policy, then sorts them
    once).  ``last_line``: the text's line that ends the top file, where included files
    follow it, and ``place`` says which file and line that is.  The statements' spans
    carry their own file and line, so the rule set is built once with each item in its
    file (``files``)."""
    scopes = sort_statements(config)
    found: Found = []
    drafts = []
    for node, access in zip(scopes.rules, scopes.rule_access, strict=True):
        draft, problems = check_rule(node, access, resolver)
        drafts.append(draft)
        found += problems
    pools, problems = check_pools(scopes.pools, drafts, resolver)
    found += problems
    found += check_pool_rules(drafts, pools)
    settings, problems = check_settings(scopes.settings)
    found += problems
    metrics, problems = check_metrics(scopes.metrics, resolver)
    found += problems
    found += check_binds(drafts, metrics)
    found += check_patterns(drafts, scopes.global_access)
    found += check_reach(drafts, scopes.global_access)
    found += check_files(scopes)
    found += check_073_reading(scopes.rules)
    found += check_not_empty(config, drafts, last_line, place)
    ruleset = build_ruleset(
        drafts,
        scopes,
        settings,
        metrics,
        resolved=resolver.enabled,
        files=files,
        pools=tuple(pool.model() for pool in sorted(pools.values(), key=lambda p: p.name)),
    )
    return ruleset, found
