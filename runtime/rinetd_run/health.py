"""One active health check of a pool member: a TCP connect within the timeout, then,
if the pool asks, a text sent and the answer's first bytes held against another.

Run by the health checker process (``checker``), never on the forwarding loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from dataclasses import dataclass

__all__ = ["Checks", "check"]


@dataclass(frozen=True, slots=True)
class Checks:
    """How a pool's members are checked: from its first TCP rule's options (its rise and
    fall are counted by rinetd-run, not here)."""

    interval: int
    timeout: int
    send: str | None = None
    expect: str | None = None


async def check(address: str, port: int, checks: Checks) -> tuple[bool, str]:
    """One TCP connect to the member within the timeout; with health-send, the text sent;
    with health-expect, the answer's first bytes held against it; then closed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + checks.timeout
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    try:
        # The connect by hand, not loop.sock_connect: a check is mostly a refused or an
        # accepted connect, and sock_connect raised and caught two exceptions for each
        # (a fifth of a check's cost, with 1,000 members checked every few seconds).
        status: int | None = sock.connect_ex((address, port))
        if status == errno.EINPROGRESS:
            status = await _connected(loop, sock, deadline)
        if status is None:
            return False, f"check: no answer in {checks.timeout} s"
        if status:
            return False, f"check: {os.strerror(status)}"
        if not checks.send and not checks.expect:
            return True, "check passed"
        async with asyncio.timeout_at(deadline):  # no task of its own, as wait_for makes
            return await _converse(loop, sock, checks)
    except TimeoutError:
        return False, f"check: no answer in {checks.timeout} s"
    except OSError as error:
        return False, f"check: {error.strerror or error}"
    finally:
        with contextlib.suppress(OSError):
            sock.close()


async def _connected(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float
) -> int | None:
    """A connect under way: its error number once the socket is writable (0 when it
    connected), or None at the deadline."""
    done: asyncio.Future[bool] = loop.create_future()

    def settle(connected: bool) -> None:
        if not done.done():
            done.set_result(connected)

    fd = sock.fileno()
    loop.add_writer(fd, settle, True)
    timer = loop.call_at(deadline, settle, False)
    try:
        if not await done:
            return None
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    finally:
        timer.cancel()
        loop.remove_writer(fd)


async def _converse(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, checks: Checks
) -> tuple[bool, str]:
    if checks.send:
        await loop.sock_sendall(sock, checks.send.encode("ascii"))
    if checks.expect:
        wanted = checks.expect.encode("ascii")
        answer = b""
        while len(answer) < len(wanted):
            data = await loop.sock_recv(sock, len(wanted) - len(answer))
            if not data:
                break
            answer += data
        if answer != wanted:
            shown = answer.decode("ascii", "replace").encode("unicode_escape").decode()
            return False, f"check: the answer began {shown[:40]!r}, not the expected text"
    return True, "check passed"
