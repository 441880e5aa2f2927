"""TCP clients: access control and the rule's limits at accept, then a link to the
backend.

Nothing reaches the backend for a rejected client: its socket is closed at
once and one log line says why.  (Keepalive is set on the listening socket,
which accepted sockets inherit: no system call here.)
"""

from __future__ import annotations

import socket
from typing import Any

from . import proxy
from .backend import connect_backend
from .context import Binding
from .tcp_end import TcpEnd

__all__ = ["accept_client"]


def accept_client(binding: Binding, sock: socket.socket, address: Any) -> None:
    """Decide on a new connection; if it is allowed, open its link."""
    client = str(address[0]) if address else "?"
    context = binding.context
    link = context.admit(binding, client, int(address[1]) if address else 0)
    if link is None:
        sock.close()
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    version = binding.options.proxy_protocol
    if version is not None:
        link.preamble = proxy.header(version, address[:2], sock.getsockname()[:2])
    link.opened(TcpEnd(context.poller, sock))
    connect_backend(link, context, binding.options)
    idle = binding.options.idle_timeout
    if idle and not link.finished:
        context.deadlines.watch_idle(link, idle)
