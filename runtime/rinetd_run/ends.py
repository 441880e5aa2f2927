"""UDP sockets as link ends, and the failure words for a backend that cannot be reached."""

from __future__ import annotations

import asyncio
import errno

from . import logline

__all__ = [
    "MAX_DATAGRAM",
    "ClientDatagramEnd",
    "DatagramEnd",
    "connect_failure",
]

# The largest UDP payload over IPv4; larger stream chunks are split to fit.
MAX_DATAGRAM = 65507

_SOCKET_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# Errors a non-blocking connect() reports later, which 0.73 sees as the
# backend closing: it logs `opened` then `done-local-closed`.
_LATE_ERRORS = {errno.ECONNREFUSED, errno.ETIMEDOUT, errno.ECONNRESET, errno.EHOSTUNREACH}


def connect_failure(number: int | None) -> str | None:
    """The log word for a failed backend connect, or None for "log as backend closed"."""
    if number in _SOCKET_ERRORS:
        return logline.LOCAL_SOCKET_FAILED
    if number in _LATE_ERRORS or number is None:
        return None
    return logline.LOCAL_CONNECT_FAILED


class DatagramEnd:
    """A connected UDP socket to the backend: every write is one datagram."""

    streams = False

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self.transport = transport

    def write(self, data: bytes | memoryview) -> None:
        for start in range(0, len(data), MAX_DATAGRAM):
            self.transport.sendto(data[start : start + MAX_DATAGRAM])

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        self.transport.close()

    abort = close

    def pause_reading(self) -> None:
        pass  # a datagram socket cannot push back; the kernel drops instead

    def resume_reading(self) -> None:
        pass


class ClientDatagramEnd(DatagramEnd):
    """A UDP client, answered through the shared listening socket."""

    def __init__(self, transport: asyncio.DatagramTransport, address: tuple[str, int]) -> None:
        super().__init__(transport)
        self.address = address

    def write(self, data: bytes | memoryview) -> None:
        if self.transport.is_closing():
            return
        for start in range(0, len(data), MAX_DATAGRAM):
            self.transport.sendto(data[start : start + MAX_DATAGRAM], self.address)

    def close(self) -> None:
        pass  # the listening socket belongs to the listener, not to one session

    abort = close
