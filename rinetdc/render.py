"""Diagnostics -> text for people (with the source line and a caret) or JSON for tools."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from .diagnostics import Diagnostic, Related, Severity, Span
from .include import Sources
from .visible import visible

__all__ = ["render_json", "render_text", "summary"]


WINDOW = 60  # characters of a long line shown on each side of the fault
REPEATS = 3  # diagnostics of one code on one line shown in full; the rest are counted


def _excerpt(lines: Sequence[str], span: Span) -> list[str]:
    source = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
    start, end = span.column - 1, max(span.end_column - 1, span.column)
    left, right = max(start - WINDOW, 0), min(max(end, start + 1) + WINDOW, len(source))
    shown = visible(source[left:right], escape=False)
    before = source[left:start]
    if left:
        shown, before = "..." + shown, "..." + before
    if right < len(source):
        shown += "..."
    gutter = " " * len(str(span.line))
    # Tabs stay tabs under the caret so it lines up in any terminal.
    pad = "".join("\t" if c == "\t" else " " for c in before)
    width = max(min(end, right) - start, 1)
    return [f" {span.line} | {shown}", f" {gutter} | {pad}{'^' * width}"]


def _related(sources: Sources, related: Related) -> list[str]:
    span = related.span
    message = visible(related.message, escape=True)
    where = f"{visible(sources.names[span.file])}:{span.line}:{span.column}"
    return [f"{where}: note: {message}", *_excerpt(sources.lines[span.file], span)]


def render_text(sources: Sources, diagnostics: Sequence[Diagnostic]) -> str:
    """Each diagnostic with its excerpt, the includes that led to its file, related places
    and hint; past ``REPEATS`` of one code on one line, a count instead (so output grows
    with the file, not its square).  ``sources`` names the files and has their lines."""
    out: list[str] = []
    shown: Counter[tuple[str, int, str]] = Counter()
    for d in diagnostics:
        span, name = d.span, sources.names[d.span.file]
        shown[name, span.line, d.code] += 1
        if shown[name, span.line, d.code] > REPEATS:
            continue
        message = visible(d.message, escape=True)
        where = f"{visible(name)}:{span.line}:{span.column}"
        out.append(f"{where}: {d.severity.value}[{d.code}]: {message}")
        out.extend(_excerpt(sources.lines[span.file], span))
        out.extend(
            f" = included from {visible(sources.names[at])}:{line}"
            for at, line in sources.chain(span.file)
        )
        for related in d.related:
            out.extend(_related(sources, related))
        if d.hint:
            out.append(f" = hint: {visible(d.hint, escape=True)}")
    for (name, line, code), count in shown.items():
        if count > REPEATS:
            out.append(f"{visible(name)}:{line}: note: {count - REPEATS} more {code} on this line")
    return "".join(line + "\n" for line in out)


def summary(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"


def _span_json(span: Span) -> dict[str, int]:
    return {"line": span.line, "column": span.column, "end_column": span.end_column}


def render_json(
    sources: Sources, diagnostics: Sequence[Diagnostic], error: str | None = None
) -> str:
    """The diagnostics as one JSON document; ``error`` (an input that could not be read,
    exit 2) adds an ``error`` key."""
    names = sources.names
    document: dict[str, object] = {
        "file": visible(names[0]),
        "errors": sum(d.severity is Severity.ERROR for d in diagnostics),
        "warnings": sum(d.severity is Severity.WARNING for d in diagnostics),
        "diagnostics": [
            {
                "file": visible(names[d.span.file]),
                "included_from": [
                    {"file": visible(names[at]), "line": line}
                    for at, line in sources.chain(d.span.file)
                ],
                "line": d.span.line,
                "column": d.span.column,
                "end": _span_json(d.span),
                "code": d.code,
                "severity": d.severity.value,
                "message": d.message,
                "hint": d.hint,
                "related": [
                    {
                        **_span_json(r.span),
                        "message": r.message,
                        "file": visible(names[r.span.file]),
                    }
                    for r in d.related
                ],
            }
            for d in diagnostics
        ],
    }
    if error is not None:
        document["error"] = error
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
