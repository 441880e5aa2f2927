"""JSON in slices: a large rule set read and sealed without holding the interpreter lock
for long.

``json.loads`` and ``json.dumps`` are C calls that keep the lock for the
whole text: 18 MB of rule set held the event loop for most of a second while a
reload read it in a thread.  Here the top-level object and its lists are walked
in Python and each value in them is decoded (``raw_decode``) or encoded on its
own, so the lock changes hands between rules.  The result is exactly
``json.loads``'s and the bytes exactly ``json.dumps``'s (compact, keys sorted,
ASCII); what ``json.loads`` refuses is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["compact_pieces", "load_bytes", "loads", "release"]

_BLANK = re.compile(r"[ \t\n\r]*")
_CHUNK = 1 << 20  # bytes of a file decoded at a time


def load_bytes(data: bytes, parse_constant: Callable[[str], Any], chunk: int = _CHUNK) -> Any:
    """``json.loads(data.decode("utf-8"), parse_constant=...)`` without ever making one
    string of the whole file: decoding and copying 75 MB is one C call of its own.  The
    bytes are cut after a newline about every MiB and each piece decoded alone; a file
    laid out as the compiler writes it (one list item a line) has no value across a
    cut.  UnicodeDecodeError and ValueError as ``bytes.decode`` and ``json.loads``
    give them."""
    pieces = []
    start = 0
    while start < len(data):
        cut = data.find(b"\n", start + chunk) + 1 or len(data)
        pieces.append(data[start:cut].decode("utf-8"))
        start = cut
    return _parsed(pieces or [""], parse_constant)


def loads(text: str, parse_constant: Callable[[str], Any]) -> Any:
    """``json.loads(text, parse_constant=...)``, the top-level object's lists item by item."""
    return _parsed([text], parse_constant)


def _parsed(pieces: list[str], parse_constant: Callable[[str], Any]) -> Any:
    """The value of the JSON text ``pieces`` make; anything but an object whose values
    each end in the piece they start in (not a rule set, a file reindented by hand, a
    fault) is read whole by ``json.loads``, for the exact value or the exact error."""
    try:
        return _Pieces(pieces, json.JSONDecoder(parse_constant=parse_constant)).document()
    except (ValueError, _Across):
        whole = pieces[0] if len(pieces) == 1 else "".join(pieces)
        return json.loads(whole, parse_constant=parse_constant)


class _Across(Exception):
    """A value runs across a cut."""


class _Pieces:
    """A cursor over the decoded pieces: the top-level object's punctuation may sit in
    any piece, every value must end in the piece it starts in."""

    def __init__(self, pieces: list[str], decoder: json.JSONDecoder) -> None:
        self.pieces, self.decoder = pieces, decoder
        self.index, self.at = 0, 0

    def _skip(self) -> str:
        """Past blanks, across cuts; the next character, or "" at the end."""
        while self.index < len(self.pieces):
            piece = self.pieces[self.index]
            self.at = _skip(piece, self.at)
            if self.at < len(piece):
                return piece[self.at]
            self.index, self.at = self.index + 1, 0
        return ""

    def _expect(self, character: str) -> None:
        if self._skip() != character:
            raise _Across  # or an error: the whole text says which
        self.at += 1

    def _value(self) -> Any:
        self._skip()
        piece = self.pieces[self.index] if self.index < len(self.pieces) else ""
        try:
            value, self.at = self.decoder.raw_decode(piece, self.at)
        except ValueError:
            raise _Across from None
        if self.at == len(piece) and self.index + 1 < len(self.pieces):
            raise _Across  # a number may go on in the next piece
        return value

    def document(self) -> dict[str, Any]:
        self._expect("{")
        document: dict[str, Any] = {}
        if self._skip() == "}":
            self.at += 1
            return self._end(document)
        while True:
            if self._skip() != '"':
                raise _Across
            key = self._value()
            self._expect(":")
            if self._skip() == "[":
                self.at += 1
                document[key] = self._list()
            else:
                document[key] = self._value()
            following = self._skip()
            self.at += 1
            if following == "}":
                return self._end(document)
            if following != ",":
                raise _Across

    def _list(self) -> list[Any]:
        items: list[Any] = []
        if self._skip() == "]":
            self.at += 1
            return items
        while True:
            items.append(self._value())
            following = self._skip()
            self.at += 1
            if following == "]":
                return items
            if following != ",":
                raise _Across

    def _end(self, document: dict[str, Any]) -> dict[str, Any]:
        if self._skip() != "":
            raise _Across
        return document


def release(document: Any) -> None:
    """Let go of a document ``loads`` made, a list item at a time: freeing 60,000 rules in
    one go is one long C call too."""
    if not isinstance(document, dict):
        return
    for value in document.values():
        if isinstance(value, list):
            while value:
                value.pop()
    document.clear()


def _skip(text: str, at: int) -> int:
    found = _BLANK.match(text, at)
    assert found is not None
    return found.end()


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def compact_pieces(document: dict[str, Any]) -> Iterator[str]:
    """The compact JSON text of ``document`` (keys sorted, ASCII), in pieces of one
    top-level field or one list item: joined, exactly ``json.dumps``'s text."""
    yield "{"
    for number, key in enumerate(sorted(document)):
        value = document[key]
        yield ("," if number else "") + _dumps(key) + ":"
        if isinstance(value, list):
            yield "["
            for index, item in enumerate(value):
                yield ("," if index else "") + _dumps(item)
            yield "]"
        else:
            yield _dumps(value)
    yield "}"
