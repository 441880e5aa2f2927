"""A socket bound as rinetd binds one: the address's family, SO_REUSEADDR, `::` taking
IPv4 clients too (they appear as ::ffff:a.b.c.d, as in 0.73), and non-blocking.
Shared by the rules' listeners and the metrics endpoint."""

from __future__ import annotations

import socket

__all__ = ["bound"]


def bound(address: str, port: int, kind: int, reuse_port: bool = False) -> socket.socket:
    """A bound, non-blocking socket of ``kind``; OSError (nothing left open) if it
    cannot be.  ``reuse_port`` only for our own workers: never share a port by accident."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if address == "::" else 1)
        sock.bind((address, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
