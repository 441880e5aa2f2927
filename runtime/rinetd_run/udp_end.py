"""UDP sockets as link ends: the backend's connected socket and a client behind a listener.

Datagrams reach the link through the asyncio protocols that own these
sockets (``udp.py``, ``backend.py``), so serving and pairing do nothing here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from .link import Sink

__all__ = ["MAX_DATAGRAM", "UdpBackendEnd", "UdpClientEnd"]

# The largest UDP payload over IPv4; larger stream chunks are split to fit.
MAX_DATAGRAM = 65507


def _datagrams(data: bytes | memoryview) -> Iterator[bytes | memoryview]:
    for start in range(0, len(data), MAX_DATAGRAM):
        yield data[start : start + MAX_DATAGRAM]


class UdpBackendEnd:
    """A connected UDP socket to the backend: every write is one datagram (or more)."""

    streams = False

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self.transport = transport

    def serve(self, sink: Sink) -> None:
        pass

    def pair(self, other: object) -> None:
        pass

    def write(self, data: bytes | memoryview) -> None:
        for datagram in _datagrams(data):
            self.transport.sendto(datagram)

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        self.transport.close()

    abort = close

    def pause_reading(self) -> None:
        pass  # a datagram socket cannot push back; the kernel drops instead

    def resume_reading(self) -> None:
        pass


class UdpClientEnd(UdpBackendEnd):
    """A UDP client, answered through the shared listening socket."""

    def __init__(self, transport: asyncio.DatagramTransport, address: tuple[str, int]) -> None:
        super().__init__(transport)
        self.address = address

    def write(self, data: bytes | memoryview) -> None:
        if self.transport.is_closing():
            return
        for datagram in _datagrams(data):
            self.transport.sendto(datagram, self.address)

    def close(self) -> None:
        pass  # the listening socket belongs to the listener, not to one session

    abort = close
