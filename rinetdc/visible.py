"""Text that came from outside (file names, lines of files, words in them) made safe to
print on a terminal or into a CI log: no control character, format character, line
separator or undecodable byte ever reaches an output raw."""

from __future__ import annotations

import unicodedata

__all__ = ["visible"]


def _named(c: str) -> str:
    if 0xDC80 <= ord(c) <= 0xDCFF:  # a byte of a file name that is not UTF-8 (surrogateescape)
        return f"\\x{ord(c) - 0xDC00:02x}"
    return c.encode("unicode_escape").decode("ascii")


def _harmful(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def visible(text: str, *, escape: bool = True) -> str:
    """``text`` with each harmful character escaped (``\\x1b``, ``\\n``, ``\\xff`` for a
    byte that is not UTF-8), or with ``escape=False`` shown as one ``?`` each, so
    that a caret under an excerpt stays in line.  Tabs are kept."""
    if text.isprintable() or all(c == "\t" or not _harmful(c) for c in text):
        return text
    return "".join(
        c if c == "\t" or not _harmful(c) else (_named(c) if escape else "?") for c in text
    )
