"""The compiler's one entry point: configuration text in, rule set and diagnostics out."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from rinetd_run.ruleset import RuleSet, SourceFile

from . import ast
from .diagnostics import Diagnostic, Severity
from .files import read_regular
from .include import Sources, expand, one_file
from .parser import parse
from .resolve import Resolver
from .targets import TARGETS
from .validate import validate

__all__ = ["Result", "check", "paused_gc"]


@dataclass(frozen=True, slots=True)
class Result:
    config: ast.Config
    ruleset: RuleSet
    diagnostics: tuple[Diagnostic, ...]  # placed in their own files (see ``sources``)
    sources: Sources

    @property
    def errors(self) -> int:
        return sum(d.severity is Severity.ERROR for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return len(self.diagnostics) - self.errors


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic GC: a big config makes many small objects and no cycles, and the
    collector's repeated passes over them took a third of a 10,000-rule compile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check(
    text: str,
    resolver: Resolver,
    *,
    name: str = "<stdin>",
    target: str = "rinetd-run",
    read: Callable[[str], str] = read_regular,
    include_roots: Sequence[str] = (),
) -> Result:
    """Parse and validate ``text`` (the file ``name``, whose includes are read with
    ``read`` from its folder's tree and ``include_roots``) for ``target`` (a name of
    ``TARGETS``); every problem found is in the result's diagnostics."""
    with paused_gc():
        whole, sources, included = expand(text, name, read, include_roots)
        config, syntax = parse(whole, sources.where)
        if not sources.origin:
            sources = one_file(name, config.lines)
        ruleset, semantic = validate(
            config, resolver, _top_end(sources), sources.where, _files(sources)
        )
    judged = TARGETS[target].judge(config, [*included, *syntax, *semantic])
    return Result(config, ruleset, tuple(sorted(judged, key=_reading_order(sources))), sources)


def _reading_order(sources: Sources) -> Callable[[Diagnostic], tuple[int, int, int, str]]:
    """Diagnostics in the order the configuration is read: an included file's at its
    include line, each line's by column."""
    position = {place: n for n, place in enumerate(sources.origin, 1)}

    def key(d: Diagnostic) -> tuple[int, int, int, str]:
        span = d.span
        line = position.get((span.file, span.line), span.line) if position else span.line
        return (line, span.column, span.end_column, d.code)

    return key


def _top_end(sources: Sources) -> int | None:
    """The line of the whole text that is the top file's last line (None: one file)."""
    if not sources.origin:
        return None
    return len(sources.origin) - next(
        (n for n, (file, _line) in enumerate(reversed(sources.origin)) if file == 0), 0
    )


def _files(sources: Sources) -> tuple[SourceFile, ...]:
    return tuple(
        SourceFile(name, at) for name, at in zip(sources.stored, sources.included_from, strict=True)
    )
