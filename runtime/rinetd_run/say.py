"""Messages for the operator on stderr, one write per line.

With ``--workers`` several processes share stderr; one ``write`` per message
keeps their lines whole (print writes the text and the newline apart).
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["say"]


def say(message: str) -> None:
    """Write ``rinetd-run: message`` and a newline to stderr in one piece."""
    data = f"rinetd-run: {message}\n".encode(errors="replace")
    with contextlib.suppress(OSError):  # stderr gone (a closed journal pipe): forward on
        os.write(2, data)
