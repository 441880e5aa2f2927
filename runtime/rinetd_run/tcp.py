"""TCP clients: access control at accept, then a link to the backend.

Nothing reaches the backend for a rejected client: its socket is closed at
once and one log line says why.
"""

from __future__ import annotations

import socket
from typing import Any

from .backend import connect_backend
from .context import Binding
from .tcp_end import TcpEnd

__all__ = ["accept_client"]


def accept_client(binding: Binding, sock: socket.socket, address: Any) -> None:
    """Decide on a new connection; if it is allowed, open its link."""
    client = str(address[0]) if address else "?"
    link = binding.context.admit(binding.rule, client)
    if link is None:
        sock.close()
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    poller = binding.context.poller
    link.opened(TcpEnd(poller, sock))
    connect_backend(link, poller)
