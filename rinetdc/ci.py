"""Diagnostics in the formats CI systems read: GitHub Actions workflow commands, and
SARIF 2.1.0 for GitHub code scanning and other SARIF consumers.  Pure functions.

A workflow command puts an annotation on the pull request's line; its
properties and message are escaped as the workflow-command rules require, so a
message can hold any character.  The SARIF log names every rule code with its
short description and help, and each result's place as a region of the file,
by a URI relative to the working directory.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import PurePosixPath
from urllib.parse import quote

from . import __version__
from .diagnostics import CODES, HELP, Diagnostic, Severity, Span
from .include import Sources, real_path
from .visible import visible

__all__ = ["render_github", "render_sarif", "render_sarif_files"]


def _friendly(title: str) -> str:
    """A rule's Pascal-case name from its title: "timeout on a tcp rule" -> TimeoutOnTcpRule."""
    words = "".join(c if c.isalnum() else " " for c in title).split()
    return "".join(w[0].upper() + w[1:] for w in words if len(w) > 1 and not w.isdigit())


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(
    sources: Sources, diagnostics: Sequence[Diagnostic], error: str | None = None
) -> str:
    """One ``::error`` or ``::warning`` workflow command per diagnostic."""
    lines = []
    for d in diagnostics:
        level = "error" if d.severity is Severity.ERROR else "warning"
        file = sources.names[d.span.file]
        where = (
            f"file={_property(visible(file))},line={d.span.line},col={d.span.column},"
            f"endColumn={max(d.span.end_column - 1, d.span.column)},title={_property(d.code)}"
        )
        message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
        lines.append(f"::{level} {where}::{_data(message)}")
    if error is not None:
        top = _property(visible(sources.names[0]))
        lines.append(f"::error file={top},title=rinetdc::{_data(error)}")
    return "".join(line + "\n" for line in lines)


def _in_checkout(file: str) -> str | None:
    """The file's path relative to the working directory once links are followed (as
    code scanning maps it onto the repository), or None when it lies outside."""
    return _relative(file, os.getcwd())


@functools.lru_cache(maxsize=4096)  # every result of a file asks again: read links once
def _relative(file: str, cwd: str) -> str | None:
    if file == "<stdin>":
        return "stdin"
    real = real_path(file)
    if real is None:
        return None
    relative = os.path.relpath(real, os.path.realpath(cwd))
    if relative == ".." or relative.startswith("../"):
        return None
    return relative


def _uri(relative: str) -> str:
    """A path relative to the working directory as a URI reference: bytes of a name that
    is not UTF-8 are percent-encoded as the bytes they are."""
    return quote(os.fsencode(PurePosixPath(*relative.split(os.sep)).as_posix()))


def _place(
    file: str, span: Span, chain: Sequence[tuple[str, int]]
) -> tuple[dict[str, object], str] | None:
    """Where a result on ``span`` of ``file`` is shown, and a prefix for its message: a
    file outside the checkout (reached through --include-root) is shown at the include
    line in the checkout that leads to it; None when no such line is known."""
    relative = _in_checkout(file)
    if relative is not None:
        return _location(_uri(relative), span), ""
    for at, line in chain:
        outer = _in_checkout(at)
        if outer is not None:
            region = Span(line, 1, 2)
            return _location(_uri(outer), region), f"in {visible(file)}:{span.line}: "
    return None


def _outside(file: str, span: Span) -> dict[str, object]:
    """A place outside the checkout by its absolute URI (a top file checked from
    elsewhere, in text formats' terms)."""
    absolute = "file://" + quote(os.fsencode(real_path(file) or os.path.abspath(file)))
    return {"physicalLocation": {"artifactLocation": {"uri": absolute}, "region": _region(span)}}


def _region(span: Span) -> dict[str, int]:
    return {
        "startLine": span.line,
        "startColumn": span.column,
        "endLine": span.line,
        "endColumn": max(span.end_column, span.column + 1),
    }


def _location(uri: str, span: Span) -> dict[str, object]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": uri, "uriBaseId": "SRCROOT"},
            "region": _region(span),
        }
    }


def render_sarif(
    sources: Sources, diagnostics: Sequence[Diagnostic], error: str | None = None
) -> str:
    """A SARIF 2.1.0 log of one run: the tool with every rule code, and the results."""
    return render_sarif_files([(sources, diagnostics)], error)


def render_sarif_files(
    files: Sequence[tuple[Sources, Sequence[Diagnostic]]], error: str | None = None
) -> str:
    """The same for several files checked in one run: one log, every file's results."""
    codes = sorted(CODES)
    rules = [
        {
            "id": code,
            "name": _friendly(CODES[code][1]),
            "shortDescription": {"text": CODES[code][1]},
            "fullDescription": {"text": HELP[code]},
            "help": {"text": HELP[code]},
            "defaultConfiguration": {"level": CODES[code][0].value},
        }
        for code in codes
    ]
    results = []
    for sources, diagnostics in files:
        results += _results(sources, diagnostics, codes)
    run: dict[str, object] = {
        "tool": {
            "driver": {
                "name": "rinetdc",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": rules,
            }
        },
        "originalUriBaseIds": {"SRCROOT": {"uri": _working_directory_uri()}},
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    if error is not None:
        run["invocations"] = [
            {
                "executionSuccessful": False,
                "toolExecutionNotifications": [{"level": "error", "message": {"text": error}}],
            }
        ]
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    }
    return json.dumps(log, indent=2) + "\n"


def _results(sources: Sources, diagnostics: Sequence[Diagnostic], codes: list[str]) -> list[object]:
    results: list[object] = []
    for d in diagnostics:
        own = sources.names[d.span.file]
        chain = [(sources.names[at], line) for at, line in sources.chain(d.span.file)]
        location, prefix = _place(own, d.span, chain) or (_outside(own, d.span), "")
        text = prefix + d.message + (f" (hint: {d.hint})" if d.hint else "")
        result: dict[str, object] = {
            "ruleId": d.code,
            "ruleIndex": codes.index(d.code),
            "level": d.severity.value,
            "message": {"text": text},
            "locations": [location],
        }
        if d.related:
            result["relatedLocations"] = [
                {
                    "id": n,
                    **_related_place(sources.names[r.span.file], r.span, location),
                    "message": {"text": r.message},
                }
                for n, r in enumerate(d.related, 1)
            ]
        results.append(result)
    return results


def _related_place(file: str, span: Span, result: dict[str, object]) -> dict[str, object]:
    """A related place in the checkout, else the result's own place (its message names
    the file)."""
    relative = _in_checkout(file)
    return result if relative is None else _location(_uri(relative), span)


def _working_directory_uri() -> str:
    return "file://" + quote(os.fsencode(os.getcwd().rstrip("/") + "/"))
