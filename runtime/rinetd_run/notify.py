"""Telling systemd (``Type=notify``) that forwarding has begun, how a reload ended and
that a stop is under way, through the datagram socket named by ``$NOTIFY_SOCKET``;
nothing without it.  A start that fails is then a failed ``systemctl start`` (and a
failed play), not a service that seems to start and restarts every two seconds.
"""

from __future__ import annotations

import contextlib
import os
import socket

__all__ = ["notify"]


def _address() -> str | None:
    name = os.environ.get("NOTIFY_SOCKET", "")
    if name.startswith("@"):  # an abstract socket
        return "\0" + name[1:]
    return name if name.startswith("/") else None


def notify(*fields: str) -> None:
    """Send ``fields`` (``READY=1``, ``STATUS=...``) as one message; never blocks and
    never fails: systemd's state is a courtesy, forwarding does not depend on it."""
    address = _address()
    if address is None:
        return
    message = "\n".join(field.replace("\n", " ") for field in fields).encode()
    with contextlib.suppress(OSError):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.sendto(message, address)
