"""Writing to a stream nobody may be reading (a pipe, the journal's socket, a terminal)
without ever waiting for it, and without splitting a line.

A pipe whose reader stalls fills in 64 KiB; a blocking write to it then stops
the writer, and with it forwarding (operator messages are written from the
event loop) or the exit (the log writer is joined at exit).  So a stream that
is not a regular file is written without blocking, in pieces of whole lines of
at most ``PIPE_BUF`` bytes: such a write is all or nothing on a pipe (POSIX)
and one buffer on a Unix socket, so processes sharing the stream (``--workers``)
never interleave inside a line, and what the reader does not take now is
dropped, whole lines at a time, and counted by the caller.  The stream's own
file description is not made non-blocking (other processes share it): a pipe
or terminal is reopened through /proc for a description of our own, a socket is
sent to with ``MSG_DONTWAIT``.  A regular file is written as it is.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
from collections.abc import Callable

__all__ = ["PIPE_BUF", "Outlet", "pieces"]

PIPE_BUF = select.PIPE_BUF  # 4096 on Linux


def pieces(data: bytes, size: int = PIPE_BUF) -> list[bytes]:
    """``data`` (whole lines) cut at line ends into pieces of at most ``size`` bytes; a
    line longer than ``size`` is a piece of its own."""
    out: list[bytes] = []
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + size) + 1
        if end <= start:  # one line longer than a piece
            end = data.find(b"\n", start) + 1 or len(data)
        out.append(data[start:end])
        start = end
    return out


class Outlet:
    """One stream (a file descriptor), written without waiting when it is not a file."""

    def __init__(self, fd: int, *, owned: bool = False) -> None:
        self.fd = fd
        self._owned = owned  # closed with the outlet (a log file we opened)
        self.stream = False  # a pipe, socket or terminal: writes may not wait
        self._send: Callable[[memoryview], int] = lambda data: os.write(fd, data)
        self._own: int | None = None
        self._socket: socket.socket | None = None
        with contextlib.suppress(OSError):
            mode = os.fstat(fd).st_mode
            if stat.S_ISSOCK(mode):
                self._socket = socket.socket(fileno=os.dup(fd))
                sock = self._socket
                self._send = lambda data: sock.send(data, socket.MSG_DONTWAIT)
                self.stream = True
            elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
                own = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                self._own = own
                self._send = lambda data: os.write(own, data)
                self.stream = True

    def write(self, data: bytes) -> tuple[int, OSError | None]:
        """Write ``data`` (whole lines): how many bytes went out, and the error that
        stopped the rest (``BlockingIOError``: the reader is not reading).  On a stream
        only whole pieces go out; on a file, as much as the kernel takes."""
        if not self.stream:
            return _all(self._send, data)
        written = 0
        for piece in pieces(data):
            done, error = _all(self._send, piece)
            written += done
            if error is not None:
                return written, error
        return written, None

    def close(self) -> None:
        if self._own is not None:
            with contextlib.suppress(OSError):
                os.close(self._own)
            self._own = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._owned:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self._owned = False


def _all(send: Callable[[memoryview], int], data: bytes) -> tuple[int, OSError | None]:
    view, written = memoryview(data), 0
    while written < len(data):
        try:
            written += send(view[written:])
        except OSError as error:
            return written, error
    return written, None
