"""The compiler's one entry point: configuration text in, rule set and diagnostics out."""

from __future__ import annotations

from dataclasses import dataclass

from . import ast, model
from .diagnostics import Diagnostic, Severity
from .parser import parse
from .resolve import Resolver
from .validate import validate

__all__ = ["Result", "check"]


@dataclass(frozen=True, slots=True)
class Result:
    config: ast.Config
    ruleset: model.RuleSet
    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> int:
        return sum(d.severity is Severity.ERROR for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return len(self.diagnostics) - self.errors


def check(text: str, resolver: Resolver) -> Result:
    """Parse and validate ``text``; every problem found is in the result's diagnostics."""
    config, syntax = parse(text)
    ruleset, semantic = validate(config, resolver)
    found = sorted([*syntax, *semantic], key=lambda d: (d.span, d.code))
    return Result(config=config, ruleset=ruleset, diagnostics=tuple(found))
