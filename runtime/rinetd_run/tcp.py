"""TCP clients: access control at accept, then a link to the backend.

Nothing reaches the backend for a rejected client: its socket is closed at
once and one log line says why.
"""

from __future__ import annotations

import socket
from typing import Any

from .backend import connect_backend
from .context import Listening
from .sockend import SocketEnd

__all__ = ["accept_client"]


def accept_client(listening: Listening, sock: socket.socket, address: Any) -> None:
    """Decide on a new connection; if it is allowed, open its link."""
    client = str(address[0]) if address else "?"
    link = listening.context.admit(listening.rule, client)
    if link is None:
        sock.close()
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    poller = listening.context.poller
    end = SocketEnd(poller, sock)
    link.opened(end)
    end.serve_client(link)
    connect_backend(link, poller)
