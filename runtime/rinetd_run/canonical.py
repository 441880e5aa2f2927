"""The canonical byte form of a rule set and its digest.

Shared by the compiler (which writes it) and the runtime (which refuses any
file whose digest does not match): sorted keys, fixed separators, ASCII, a
trailing newline.  The digest covers the compact form of everything but the
``digest`` field itself, so re-indenting the file does not matter but any
edited value does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["FORMAT", "VERSION", "digest", "dumps"]

FORMAT = "rinetdc-rules"
VERSION = 1


def digest(document: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the compact canonical form of ``document`` without its digest."""
    content = {key: value for key, value in document.items() if key != "digest"}
    compact = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(compact.encode("ascii")).hexdigest()


def dumps(document: dict[str, Any]) -> str:
    """The file text: ``document`` with its digest, indented, keys sorted, newline-terminated."""
    sealed = {**document, "digest": digest(document)}
    return (
        json.dumps(sealed, sort_keys=True, indent=2, separators=(",", ": "), ensure_ascii=True)
        + "\n"
    )
