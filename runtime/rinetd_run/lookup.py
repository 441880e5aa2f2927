"""A host name's address, looked up as rinetd 0.73 does: the first getaddrinfo gives.

The one place both the compiler (``rinetdc check``) and the runtime (start, reload)
look a name up, so they agree on which address a name means.
"""

from __future__ import annotations

import socket

__all__ = ["first_address"]


def first_address(host: str) -> str | None:
    """The first address getaddrinfo gives for ``host``, or None when it gives none."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return str(found[0][4][0]) if found else None
