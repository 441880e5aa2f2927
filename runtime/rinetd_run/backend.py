"""Opening the backend side of a link: a TCP connection or a connected UDP socket."""

from __future__ import annotations

import asyncio
from typing import cast

from .ends import WRITE_BUFFER_HIGH, DatagramEnd, FlowControl, StreamEnd, connect_failure
from .link import Link

__all__ = ["BackendStream", "connect_backend"]

_connecting: set[asyncio.Task[None]] = set()  # strong references until each is done


def connect_backend(link: Link) -> None:
    """Start connecting; the link hears of success or failure."""
    task = asyncio.get_running_loop().create_task(_connect(link))
    _connecting.add(task)
    task.add_done_callback(_connecting.discard)


class BackendStream(FlowControl):
    def __init__(self, link: Link) -> None:
        self.link = link

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        assert self.link is not None
        self.link.backend_ready(StreamEnd(transport))

    def _peer_end(self) -> StreamEnd | None:
        client = self.link.client if self.link else None
        return client if isinstance(client, StreamEnd) else None

    def data_received(self, data: bytes) -> None:
        assert self.link is not None
        self.link.from_backend(data)

    def eof_received(self) -> bool:
        assert self.link is not None
        self.link.backend_closed_write()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        assert self.link is not None
        self.link.backend_lost()


class _BackendDatagrams(asyncio.DatagramProtocol):
    def __init__(self, link: Link) -> None:
        self.link = link

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.DatagramTransport, transport)
        self.link.backend_ready(DatagramEnd(transport))

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.link.touch()
        self.link.from_backend(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable for one datagram: UDP has no connection to end


async def _connect(link: Link) -> None:
    loop = asyncio.get_running_loop()
    rule = link.rule
    address = rule.connect.address
    assert address is not None
    local = (rule.src_address, 0) if rule.src_address else None
    try:
        if rule.connect.protocol == "tcp":
            await loop.create_connection(
                lambda: BackendStream(link), host=address, port=rule.connect.port, local_addr=local
            )
        else:
            await loop.create_datagram_endpoint(
                lambda: _BackendDatagrams(link),
                remote_addr=(address, rule.connect.port),
                local_addr=local,
            )
    except OSError as error:
        word = connect_failure(error.errno)
        if word is None:
            link.backend_failed()
        else:
            link.finish(abort=True, result=word)
