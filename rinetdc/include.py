"""`include`: the one text the parser and validator read, made of the top file and
every file its includes match, with where each of its lines came from.

Include is textual (the included lines are read as if written at the include
line, matches in sorted order), so every check works across files unchanged;
``Sources`` maps a line of that text back to its file and line for
diagnostics and for the rule set.  A file without `include` is its own text.

The include line is read by the grammar (``parser.include_name``), so the
file the expander opens is the file the parser names.  A configuration may be
hostile (a pull request checked in CI), so includes are confined: a file is
read, and a folder listed for a pattern, only when its real path (links
followed, `..` as the kernel resolves it) lies under the top file's folder or
an include root; a refused file is named, never opened.  Patterns are matched
by a walker of our own, not by ``glob``: the folder a pattern is relative to is
never read as a pattern (`prod[1]/`), paths are never normalized as text, and
every walk is bounded (parts of a pattern, folder entries looked at, files
included, bytes read), so no input makes expansion slow or large.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .diagnostics import Diagnostic, Span, make
from .files import MAX_INPUT, FileTrouble, read_regular
from .parser import include_name, invisible_character, missing_newline
from .visible import visible

__all__ = ["MAX_DEPTH", "MAX_FILES", "Sources", "expand", "inside", "real_path"]

MAX_DEPTH = 10  # the top file is depth 0
MAX_FILES = 1000  # files included in all, a file included twice counting twice
MAX_LISTED = 100_000  # folder entries looked at by all patterns together
MAX_PARTS = 32  # folders and names in one pattern
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
    return Sources((name,), (stored_name(name),), (None,), (), (lines,))


def stored_name(name: str) -> str:
    """A file's name as the rule set records it: printable, so the reader takes it."""
    return visible(os.path.basename(name) or name)


def real_path(path: str) -> str | None:
    """``path`` with every link followed, or None when a link cannot be read (as
    /proc/1/cwd for another user): such a path is never inside anything."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return None


def inside(real: str | None, roots: Sequence[str]) -> bool:
    """Whether the real path ``real`` is one of ``roots`` (real paths) or under one."""
    return real is not None and any(
        real == root or real.startswith(root.rstrip("/") + "/") for root in roots
    )


class _Refused(Exception):
    """A pattern that may not be followed; the message says why, naming no file's text."""


@dataclass
class _Walk:
    """The matching of include patterns, bounded across one configuration."""

    roots: tuple[str, ...]
    listed: int = 0

    def matches(self, folder: str, pattern: str) -> list[str]:
        """The paths ``pattern`` names, relative to ``folder`` (taken literally), sorted;
        a literal name is returned whether it exists or not."""
        parts = [part for part in pattern.split("/") if part not in ("", ".")]
        if len(parts) > MAX_PARTS:
            raise _Refused(f"has more than {MAX_PARTS} folders and names")
        paths = ["/" if pattern.startswith("/") else folder]
        for part in parts:
            if not glob.has_magic(part):
                paths = [os.path.join(path, part) for path in paths]
                continue
            found: list[str] = []
            for path in paths:
                found += self._list(path, part)
            paths = found
        return sorted(paths)

    def _list(self, path: str, part: str) -> list[str]:
        if not inside(real_path(path or "."), self.roots):
            raise _Refused(f"would list {visible(path or '.')}, {_OUTSIDE}")
        try:
            with os.scandir(path or ".") as entries:
                names = [entry.name for entry in entries]
        except OSError:
            return []  # not a folder, or one we may not list: nothing matches there
        self.listed += len(names)
        if self.listed > MAX_LISTED:
            raise _Refused(f"makes the includes look at more than {MAX_LISTED:,} folder entries")
        hidden = part.startswith(".")
        return [
            os.path.join(path, name)
            for name in sorted(names)
            if (hidden or not name.startswith(".")) and fnmatch.fnmatchcase(name, part)
        ]


_OUTSIDE = "outside the folders includes may read"


@dataclass
class _Reading:
    read: Callable[[str], str]
    top_folder: str
    walk: _Walk
    text: list[str] = field(default_factory=list)
    origin: list[tuple[int, int]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    included_from: list[tuple[int, int] | None] = field(default_factory=list)
    lines: list[tuple[str, ...]] = field(default_factory=list)
    found: list[Diagnostic] = field(default_factory=list)
    texts: dict[str, str | FileTrouble] = field(default_factory=dict)  # by real path
    size: int = 0
    statements: int = 0  # include lines seen
    stopped: bool = False  # a budget ran out: no more includes are followed

    def visit(self, index: int, text: str, chain: tuple[str, ...], depth: int) -> None:
        physical = text.split("\n")
        if physical[-1] == "":
            physical.pop()
        elif physical:
            self.found += missing_newline(physical[-1], len(physical), lambda n: (index, n))
        self.lines.append(tuple(raw.rstrip("\r") for raw in physical))
        folder = os.path.dirname(self.names[index])
        first = index > 0  # an included file's first statement is looked at (W113)
        for number, raw in enumerate(physical, 1):
            self.text.append(raw)
            self.origin.append((index, number))
            word = _FIRST_WORD.match(raw) if first else None
            if word is not None:
                first = False
                self._access_first(word, index, number)
            if _HAS_INCLUDE.match(raw) is None or self.stopped:
                continue
            self.statements += 1
            if self.statements > MAX_FILES:
                why = f"more than {MAX_FILES:,} include lines"
                self._stop(why, Span(number, 1, len(raw.rstrip("\r")) + 1, index))
                continue
            named = include_name(raw)
            if named is None:
                continue  # a broken line: the parser reports it
            written, start, end = named
            span = Span(number, start, end, index)
            pattern = self._pattern(raw, written, span)
            if pattern is not None:
                self.include(pattern, span, (index, number), folder, chain, depth)

    def _pattern(self, raw: str, written: str, span: Span) -> str | None:
        """The pattern an include's file name means, or None with a diagnostic."""
        here = (span.file, span.line)
        unseen = invisible_character(raw, span.column, span.end_column, span.line, lambda _: here)
        if unseen is not None:
            self.found.append(unseen)
            return None
        pattern = written
        if written.startswith('"') and written.endswith('"') and len(written) > 1:
            pattern = written[1:-1]
        if not pattern:
            message = "include names no file: the quotes are empty"
            self.found.append(make("E001", message, span, hint="write the file name"))
            return None
        if '"' in pattern:
            message = f"include file name {written} has a stray quote"
            hint = 'quote the whole name, as in include "conf.d/my rules.conf", or none of it'
            self.found.append(make("E001", message, span, hint=hint))
            return None
        return pattern

    def include(
        self,
        pattern: str,
        span: Span,
        at: tuple[int, int],
        folder: str,
        chain: tuple[str, ...],
        depth: int,
    ) -> None:
        try:
            matches = self.walk.matches(folder, pattern)
        except _Refused as why:
            self._refuse(pattern, f"include '{pattern}' {why}", span)
            return
        except (OSError, RecursionError, ValueError) as error:  # the OS's limits on paths
            self._refuse(pattern, f"include '{pattern}' cannot be followed: {error}", span)
            return
        said = len(self.found)
        found = False
        for match in matches:
            real = real_path(match)
            if real is None or not inside(real, self.walk.roots):
                message = f"include '{pattern}' names {visible(match)}, {_OUTSIDE}"
                self._refuse(pattern, message, span)
                continue
            if not os.path.lexists(match):
                continue
            found = True
            if depth + 1 > MAX_DEPTH:
                message = f"include '{pattern}' is nested {depth + 1} deep; at most {MAX_DEPTH}"
                self.found.append(make("E016", message, span, hint="flatten the includes"))
                return
            if real in chain:
                self.found.append(
                    make(
                        "E015",
                        f"include '{pattern}' reads {visible(match)} again: an include cycle",
                        span,
                        hint="a file may not include itself or a file that includes it",
                    )
                )
                continue
            if not self._admit(match, real, span):
                return
            text = self.texts[real]
            if isinstance(text, FileTrouble):
                self.found.append(make("E017", str(text), span))
                continue
            index = len(self.names)
            self.names.append(match)
            self.stored.append(
                visible(real if os.path.isabs(pattern) else os.path.relpath(real, self.top_folder))
            )
            self.included_from.append(at)
            self.visit(index, text, (*chain, real), depth + 1)
            if self.stopped:
                return
        if not found and len(self.found) == said:
            if not glob.has_magic(pattern):
                message = (
                    f"include '{pattern}': there is no file {visible(_joined(folder, pattern))}"
                )
                hint = "the name is relative to the including file's folder"
                self.found.append(make("E017", message, span, hint=hint))
            else:
                hint = "the pattern is relative to the including file's folder"
                message = f"include '{pattern}' matches no file"
                self.found.append(make("W112", message, span, hint=hint))

    def _admit(self, match: str, real: str, span: Span) -> bool:
        """Read ``match`` once (by real path) and count it against the budgets; False,
        with one diagnostic, when a budget runs out and expansion stops."""
        if real not in self.texts:
            try:
                self.texts[real] = self.read(match)
            except FileTrouble as trouble:
                self.texts[real] = trouble
        text = self.texts[real]
        self.size += len(text) if isinstance(text, str) else 0
        why = None
        if len(self.names) >= MAX_FILES + 1:
            why = f"the includes read more than {MAX_FILES:,} files"
        elif self.size > MAX_INPUT:
            why = f"with its includes the configuration is larger than {MAX_INPUT >> 20} MiB"
        if why is None:
            return True
        self._stop(why, span)
        return False

    def _stop(self, why: str, span: Span) -> None:
        hint = "include each file once; an include in an included file reads again"
        self.found.append(make("E022", f"{why}: no more includes are read", span, hint=hint))
        self.stopped = True

    def _refuse(self, pattern: str, message: str, span: Span) -> None:
        hint = (
            "includes read files under the top file's folder; "
            "rinetdc --include-root DIR adds a folder"
        )
        self.found.append(make("E021", message, span, hint=hint))

    def _access_first(self, word: re.Match[str], index: int, number: int) -> None:
        if word.group(1) not in ("allow", "deny"):
            return
        span = Span(number, word.start(1) + 1, word.end(1) + 1, index)
        self.found.append(
            make(
                "W113",
                f"{visible(self.names[index])} begins with an access line: it belongs to the "
                "rule before the include (or is global if there is none)",
                span,
                hint="put the access lines below a rule of this file, or in the including file",
            )
        )


def _joined(folder: str, pattern: str) -> str:
    return pattern if pattern.startswith("/") else os.path.join(folder, pattern)


def expand(
    text: str,
    name: str,
    read: Callable[[str], str] = read_regular,
    roots: Sequence[str] = (),
) -> tuple[str, Sources, list[Diagnostic]]:
    """The whole text of the configuration ``text`` named ``name``, where its lines came
    from, and the diagnostics of its includes (cycles, depth, unreadable files,
    patterns that match nothing, files outside the top file's folder and ``roots``)."""
    if not _HAS_INCLUDE.search(text):
        return text, one_file(name, ()), []
    top = "" if name == "<stdin>" else name
    top_folder = os.path.realpath(os.path.dirname(top) or ".")
    allowed = (top_folder, *(os.path.realpath(root) for root in roots))
    reading = _Reading(read, top_folder, _Walk(allowed))
    reading.names.append(top or name)
    reading.stored.append(stored_name(top or name))
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
