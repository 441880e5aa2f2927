"""The compiler's one entry point: configuration text in, rule set and diagnostics out."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from rinetd_run.ruleset import RuleSet, SourceFile

from . import ast
from .diagnostics import Diagnostic, Related, Severity
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
        config, syntax = parse(whole)
        if not sources.origin:
            sources = one_file(name, config.lines)
        ruleset, semantic = validate(
            config, resolver, _top_end(sources), sources.where, _files(sources)
        )
    judged = TARGETS[target].judge(config, [*included, *syntax, *semantic])
    found = sorted(judged, key=lambda d: (d.span, d.code))
    if not sources.origin:
        return Result(config, ruleset, tuple(found), sources)
    return Result(config, ruleset, tuple(_place(d, sources) for d in found), sources)


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


def _place(d: Diagnostic, sources: Sources) -> Diagnostic:
    """A diagnostic on a line of the whole text, moved to its own file and line."""
    file, line = sources.where(d.span.line)
    related = []
    for r in d.related:
        other, other_line = sources.where(r.span.line)
        related.append(Related(replace(r.span, line=other_line), r.message, sources.names[other]))
    return replace(
        d,
        span=replace(d.span, line=line),
        related=tuple(related),
        file=sources.names[file] if file else None,
        included_from=tuple((sources.names[f], n) for f, n in sources.chain(file)),
    )
