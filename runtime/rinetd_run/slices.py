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

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["compact_pieces", "decode", "loads"]

_BLANK = re.compile(r"[ \t\n\r]*")
_CHUNK = 1 << 20  # bytes decoded from UTF-8 at a time


def decode(data: bytes) -> str:
    """``data`` decoded from UTF-8 a MiB at a time (UnicodeDecodeError as ``bytes.decode``)."""
    if len(data) <= _CHUNK:
        return data.decode("utf-8")
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    parts = [
        decoder.decode(view[start : start + _CHUNK], final=start + _CHUNK >= len(data))
        for start in range(0, len(data), _CHUNK)
    ]
    return "".join(parts)


def loads(text: str, parse_constant: Callable[[str], Any]) -> Any:
    """``json.loads(text, parse_constant=...)``, the top-level object's lists item by item."""
    decoder = json.JSONDecoder(parse_constant=parse_constant)
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return decoder.decode(text)  # not a rule set: one small value, or refused
    document: dict[str, Any] = {}
    at = _skip(text, at + 1)
    if text.startswith("}", at):
        return _end(text, at + 1, document)
    while True:
        if not text.startswith('"', at):
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, at
            )
        key, at = decoder.raw_decode(text, at)
        at = _skip(text, at)
        if not text.startswith(":", at):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, at)
        at = _skip(text, at + 1)
        if text.startswith("[", at):
            document[key], at = _list(decoder, text, at)
        else:
            document[key], at = decoder.raw_decode(text, at)
        at = _skip(text, at)
        if text.startswith("}", at):
            return _end(text, at + 1, document)
        if not text.startswith(",", at):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
        at = _skip(text, at + 1)


def _list(decoder: json.JSONDecoder, text: str, at: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    at = _skip(text, at + 1)
    if text.startswith("]", at):
        return items, at + 1
    while True:
        item, at = decoder.raw_decode(text, at)
        items.append(item)
        at = _skip(text, at)
        if text.startswith("]", at):
            return items, at + 1
        if not text.startswith(",", at):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
        at = _skip(text, at + 1)


def _skip(text: str, at: int) -> int:
    found = _BLANK.match(text, at)
    assert found is not None
    return found.end()


def _end(text: str, at: int, document: dict[str, Any]) -> dict[str, Any]:
    at = _skip(text, at)
    if at != len(text):
        raise json.JSONDecodeError("Extra data", text, at)
    return document


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
