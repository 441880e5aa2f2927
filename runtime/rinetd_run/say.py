"""Messages for the operator on stderr, one write per line, never waiting.

With ``--workers`` several processes share stderr; one ``write`` per message
keeps their lines whole (print writes the text and the newline apart).  Messages
are said from the event loop, so a stderr nobody reads (a full pipe, a stalled
journal) must not stop forwarding: a message it does not take now is dropped,
and the next one that goes out says how many were (see ``outlet``).
"""

from __future__ import annotations

from .outlet import Outlet

__all__ = ["say"]

_stderr: Outlet | None = None
_dropped = 0


def say(message: str) -> None:
    """Write ``rinetd-run: message`` and a newline to stderr in one piece."""
    global _stderr, _dropped
    if _stderr is None:
        _stderr = Outlet(2)
    if _dropped:
        note = f"rinetd-run: {_dropped} messages to stderr were dropped (nobody read them)\n"
        if _stderr.write(note.encode())[1] is not None:
            _dropped += 1
            return
        _dropped = 0
    data = f"rinetd-run: {message}\n".encode(errors="replace")
    written, error = _stderr.write(data)
    if error is not None and written < len(data):  # stderr full or gone: forward on
        _dropped += 1
