"""`include`: the one text the parser and validator read, made of the top file and
every file its includes match, with where each of its lines came from.

Include is textual (the included lines are read as if written at the include
line, matches in sorted order), so every check works across files unchanged;
``Sources`` maps a line of that text back to its file and line for
diagnostics and for the rule set.  A file without `include` is its own text.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .diagnostics import Diagnostic, Span, make
from .files import MAX_INPUT, FileTrouble, read_regular
from .parser import missing_newline

__all__ = ["MAX_DEPTH", "Sources", "expand"]

MAX_DEPTH = 10  # the top file is depth 0
_INCLUDE = re.compile(r"[ \t]*include[ \t]+(\"[^\"\r\n]+\"|[^ \t\r\n#\"]+)[ \t]*(#.*)?\r?")
_HAS_INCLUDE = re.compile(r"^[ \t]*include[ \t]", re.MULTILINE)
_FIRST_WORD = re.compile(r"[ \t]*([^ \t\r#]+)")


@dataclass(frozen=True, slots=True)
class Sources:
    """The files behind a configuration's text, and where each of its lines came from."""

    names: tuple[str, ...]  # as shown: the top file as named, joined with the patterns
    stored: tuple[str, ...]  # as the rule set records them: relative to the top's folder
    included_from: tuple[tuple[int, int] | None, ...]  # (file, line) of the include
    origin: tuple[tuple[int, int], ...] = ()  # per line of the text; () when one file
    lines: tuple[tuple[str, ...], ...] = ()  # each file's lines, for excerpts

    def where(self, line: int) -> tuple[int, int]:
        """The file index and line in that file of ``line`` of the whole text."""
        if not self.origin:
            return 0, line
        return self.origin[line - 1] if 0 < line <= len(self.origin) else (0, line)

    def chain(self, file: int) -> list[tuple[int, int]]:
        """The include statements that led to ``file``, innermost first."""
        found = []
        at = self.included_from[file] if file < len(self.included_from) else None
        while at is not None:
            found.append(at)
            at = self.included_from[at[0]]
        return found


def one_file(name: str, lines: tuple[str, ...]) -> Sources:
    return Sources((name,), (os.path.basename(name) or name,), (None,), (), (lines,))


@dataclass
class _Reading:
    read: Callable[[str], str]
    top_folder: str
    text: list[str] = field(default_factory=list)
    origin: list[tuple[int, int]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    included_from: list[tuple[int, int] | None] = field(default_factory=list)
    lines: list[tuple[str, ...]] = field(default_factory=list)
    found: list[Diagnostic] = field(default_factory=list)
    size: int = 0

    def visit(self, index: int, text: str, chain: tuple[str, ...], depth: int) -> None:
        physical = text.split("\n")
        if physical[-1] == "":
            physical.pop()
        elif physical:
            last = len(self.text) + len(physical)
            self.found += missing_newline(physical[-1], last)
        self.lines.append(tuple(raw.rstrip("\r") for raw in physical))
        folder = os.path.dirname(self.names[index])
        first = index > 0  # an included file's first statement is looked at (W113)
        for number, raw in enumerate(physical, 1):
            self.text.append(raw)
            self.origin.append((index, number))
            word = _FIRST_WORD.match(raw) if first else None
            if word is not None:
                first = False
                self._access_first(word, index)
            match = _INCLUDE.fullmatch(raw)
            if match is not None:
                span = Span(len(self.text), match.start(1) + 1, match.end(1) + 1)
                self.include(match.group(1).strip('"'), span, (index, number), folder, chain, depth)

    def include(
        self,
        pattern: str,
        span: Span,
        at: tuple[int, int],
        folder: str,
        chain: tuple[str, ...],
        depth: int,
    ) -> None:
        matches = sorted(os.path.normpath(m) for m in glob.glob(os.path.join(folder, pattern)))
        if not matches:
            hint = "the pattern is relative to the including file's folder"
            self.found.append(make("W112", f"include '{pattern}' matches no file", span, hint=hint))
            return
        if depth + 1 > MAX_DEPTH:
            message = f"include '{pattern}' is nested {depth + 1} deep; at most {MAX_DEPTH}"
            self.found.append(make("E016", message, span, hint="flatten the includes"))
            return
        for match in matches:
            real = os.path.realpath(match)
            if real in chain:
                self.found.append(
                    make(
                        "E015",
                        f"include '{pattern}' reads {match} again: an include cycle",
                        span,
                        hint="a file may not include itself or a file that includes it",
                    )
                )
                continue
            try:
                text = self.read(match)
            except FileTrouble as trouble:
                self.found.append(make("E017", str(trouble), span))
                continue
            self.size += len(text)
            if self.size > MAX_INPUT:
                message = (
                    f"with its includes the configuration is larger than {MAX_INPUT >> 20} MiB"
                )
                self.found.append(make("E017", message, span))
                return
            index = len(self.names)
            self.names.append(match)
            self.stored.append(
                match if os.path.isabs(pattern) else os.path.relpath(match, self.top_folder)
            )
            self.included_from.append(at)
            self.visit(index, text, (*chain, real), depth + 1)

    def _access_first(self, word: re.Match[str], index: int) -> None:
        if word.group(1) not in ("allow", "deny"):
            return
        span = Span(len(self.text), word.start(1) + 1, word.end(1) + 1)
        self.found.append(
            make(
                "W113",
                f"{self.names[index]} begins with an access line: it belongs to the rule "
                "before the include (or is global if there is none)",
                span,
                hint="put the access lines below a rule of this file, or in the including file",
            )
        )


def expand(
    text: str, name: str, read: Callable[[str], str] = read_regular
) -> tuple[str, Sources, list[Diagnostic]]:
    """The whole text of the configuration ``text`` named ``name``, where its lines came
    from, and the diagnostics of its includes (cycles, depth, unreadable files,
    patterns that match nothing)."""
    if not _HAS_INCLUDE.search(text):
        return text, one_file(name, ()), []
    top = "" if name == "<stdin>" else name
    reading = _Reading(read, os.path.dirname(top) or ".")
    reading.names.append(top or name)
    reading.stored.append(os.path.basename(top) or name)
    reading.included_from.append(None)
    real = os.path.realpath(top) if top else ""
    reading.visit(0, text, (real,) if real else (), 0)
    whole = "".join(line + "\n" for line in reading.text)
    sources = Sources(
        names=tuple(reading.names),
        stored=tuple(reading.stored),
        included_from=tuple(reading.included_from),
        origin=tuple(reading.origin),
        lines=tuple(reading.lines),
    )
    return whole, sources, reading.found
