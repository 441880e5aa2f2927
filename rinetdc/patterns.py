"""Which client addresses an access pattern matches, compared between patterns: whether
every address one glob matches is matched by some glob of a set.  A pure function,
for `diff` (a pattern that another already covers changes nothing).

Patterns are rinetd's globs (``*`` any run, ``?`` one character, everything else
itself) over the text of a numeric address, whose characters are the lowercase hex
digits, ``.`` and ``:``.  Inclusion of such languages is decided exactly by walking
both patterns' automata together over that alphabet.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["covered"]

_ADDRESS_CHARACTERS = "0123456789abcdef.:"
_MOST_STATES = 20_000  # past this, say "not covered": a change is shown, never hidden


def _closure(pattern: str, states: Iterable[int]) -> frozenset[int]:
    """The positions reached without reading a character (a ``*`` may match nothing)."""
    found = set(states)
    for state in sorted(found):
        while state < len(pattern) and pattern[state] == "*":
            state += 1
            found.add(state)
    return frozenset(found)


def _step(pattern: str, states: frozenset[int], c: str) -> frozenset[int]:
    moved = set()
    for state in states:
        if state < len(pattern):
            if pattern[state] == "*":
                moved.add(state)
            elif pattern[state] == "?" or pattern[state] == c:
                moved.add(state + 1)
    return _closure(pattern, moved)


def covered(pattern: str, others: Iterable[str]) -> bool:
    """True when every address text ``pattern`` matches is matched by one of ``others``."""
    patterns = tuple(others)
    if pattern in patterns:
        return True
    start = (
        _closure(pattern, [0]),
        tuple(_closure(other, [0]) for other in patterns),
    )
    seen = {start}
    todo = [start]
    while todo:
        mine, theirs = todo.pop()
        if not mine:
            continue  # no address goes on this way
        matched = any(len(o) in s for o, s in zip(patterns, theirs, strict=True))
        if len(pattern) in mine and not matched:
            return False
        for c in _ADDRESS_CHARACTERS:
            after = (
                _step(pattern, mine, c),
                tuple(_step(o, s, c) for o, s in zip(patterns, theirs, strict=True)),
            )
            if after not in seen:
                if len(seen) >= _MOST_STATES:
                    return False
                seen.add(after)
                todo.append(after)
    return True
