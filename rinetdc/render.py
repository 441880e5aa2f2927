"""Diagnostics -> text for people (with the source line and a caret) or JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .diagnostics import Diagnostic, Related, Severity, Span

__all__ = ["render_json", "render_text", "summary"]


def _excerpt(lines: Sequence[str], span: Span) -> list[str]:
    source = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
    gutter = " " * len(str(span.line))
    # Tabs stay tabs under the caret so it lines up in any terminal.
    pad = "".join("\t" if c == "\t" else " " for c in source[: span.column - 1])
    width = max(span.end_column - span.column, 1)
    return [f" {span.line} | {source}", f" {gutter} | {pad}{'^' * width}"]


def _related(file: str, lines: Sequence[str], related: Related) -> list[str]:
    span = related.span
    return [f"{file}:{span.line}:{span.column}: note: {related.message}", *_excerpt(lines, span)]


def render_text(file: str, lines: Sequence[str], diagnostics: Sequence[Diagnostic]) -> str:
    out: list[str] = []
    for d in diagnostics:
        span = d.span
        out.append(f"{file}:{span.line}:{span.column}: {d.severity.value}[{d.code}]: {d.message}")
        out.extend(_excerpt(lines, span))
        for related in d.related:
            out.extend(_related(file, lines, related))
        if d.hint:
            out.append(f" = hint: {d.hint}")
    return "".join(line + "\n" for line in out)


def summary(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"


def _span_json(span: Span) -> dict[str, int]:
    return {"line": span.line, "column": span.column, "end_column": span.end_column}


def render_json(file: str, diagnostics: Sequence[Diagnostic]) -> str:
    document = {
        "file": file,
        "errors": sum(d.severity is Severity.ERROR for d in diagnostics),
        "warnings": sum(d.severity is Severity.WARNING for d in diagnostics),
        "diagnostics": [
            {
                "file": file,
                "line": d.span.line,
                "column": d.span.column,
                "end": _span_json(d.span),
                "code": d.code,
                "severity": d.severity.value,
                "message": d.message,
                "hint": d.hint,
                "related": [{**_span_json(r.span), "message": r.message} for r in d.related],
            }
            for d in diagnostics
        ],
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
