"""Access patterns for the kernel data plane: the IPv4 addresses a pattern matches, as a
few products of per-octet value sets, exactly as ``access.matches`` decides them.

A pattern is a glob over an address's text (``10.1.*``, ``1*1``, ``192.168.?.5``),
and ``*`` may span dots, so its matches are not one prefix.  Read as a small
automaton over the text, though, the state after each octet and its dot depends
only on the octet's value: grouping the 256 values by the state they lead to,
level by level, gives the matches as a union of products ``S1 x S2 x S3 x S4``
of value sets, which nftables matches byte by byte.  Pure: no I/O.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["MAX_TERMS", "Term", "covers", "ipv4_terms"]

# A term is one product of four sets of octet values.
Term = tuple[frozenset[int], frozenset[int], frozenset[int], frozenset[int]]
MAX_TERMS = 64  # more, and the pattern stays in user space
_TEXT = tuple(str(value) for value in range(256))
_States = frozenset[int]


def _closure(pattern: str, states: set[int]) -> _States:
    """``states`` and every state a run of ``*`` matching nothing leads to."""
    done = set(states)
    todo = list(states)
    while todo:
        state = todo.pop()
        if state < len(pattern) and pattern[state] == "*" and state + 1 not in done:
            done.add(state + 1)
            todo.append(state + 1)
    return frozenset(done)


def _step(pattern: str, states: _States, text: str) -> _States:
    for char in text:
        following: set[int] = set()
        for state in states:
            if state < len(pattern):
                wanted = pattern[state]
                if wanted == "*":
                    following.add(state)
                elif wanted == "?" or wanted == char:
                    following.add(state + 1)
        states = _closure(pattern, following)
        if not states:
            break
    return states


def _classes(pattern: str, states: _States, last: bool) -> dict[_States, frozenset[int]]:
    """The octet values grouped by the states that the octet's text (and, but for the
    last octet, its dot) leads to from ``states``; values that lead nowhere left out."""
    groups: dict[_States, set[int]] = {}
    for value, text in enumerate(_TEXT):
        after = _step(pattern, states, text if last else text + ".")
        if after:
            groups.setdefault(after, set()).add(value)
    return {after: frozenset(values) for after, values in groups.items()}


@lru_cache(maxsize=1024)
def ipv4_terms(pattern: str) -> tuple[Term, ...] | None:
    """The IPv4 addresses (in dotted-quad text, as the runtime sees a client of an IPv4
    listener) that ``pattern`` matches, as products of octet sets; None when that takes
    more than ``MAX_TERMS`` products."""
    terms: list[Term] = []
    accept = len(pattern)

    def walk(states: _States, level: int, sets: tuple[frozenset[int], ...]) -> bool:
        for after, values in _classes(pattern, states, level == 3).items():
            if level == 3:
                if accept in after:
                    terms.append((sets[0], sets[1], sets[2], values))
                    if len(terms) > MAX_TERMS:
                        return False
            elif not walk(after, level + 1, (*sets, values)):
                return False
        return True

    if not walk(_closure(pattern, {0}), 0, ()):
        return None
    return tuple(_merged(terms))


def _merged(terms: list[Term]) -> list[Term]:
    """Terms that differ in one octet only, joined (``*.1`` is then one term)."""
    merged = True
    while merged:
        merged = False
        for i in range(len(terms)):
            for j in range(i + 1, len(terms)):
                a, b = terms[i], terms[j]
                differ = [k for k in range(4) if a[k] != b[k]]
                if len(differ) <= 1:
                    k = differ[0] if differ else 0
                    joined = list(a)
                    joined[k] = a[k] | b[k]
                    terms[i] = (joined[0], joined[1], joined[2], joined[3])
                    del terms[j]
                    merged = True
                    break
            if merged:
                break
    return terms


def covers(terms: tuple[Term, ...], address: str) -> bool:
    """Whether the dotted-quad ``address`` lies in one of ``terms``."""
    octets = [int(part) for part in address.split(".")]
    return any(all(octets[k] in term[k] for k in range(4)) for term in terms)
