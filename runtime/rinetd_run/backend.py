"""Opening the backend side of a link: a TCP connection or a connected UDP socket.

TCP connects are made by hand (non-blocking ``connect``, one writer callback)
rather than through ``loop.create_connection``, whose coroutine, task and
futures were a fifth of the cost of each new connection.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any, cast

from .ends import WRITE_BUFFER_HIGH, DatagramEnd, FlowControl, StreamEnd, connect_failure
from .link import Link

__all__ = ["BackendStream", "connect_backend"]

_connecting: set[asyncio.Task[None]] = set()  # strong references until each is done


def connect_backend(link: Link) -> None:
    """Start connecting; the link hears of success or failure."""
    loop = asyncio.get_running_loop()
    make_transport = getattr(loop, "_make_socket_transport", None)
    if link.rule.connect.protocol == "tcp" and make_transport is not None:
        _connect_stream(loop, link, make_transport)
        return
    task = loop.create_task(_connect(link))
    _connecting.add(task)
    task.add_done_callback(_connecting.discard)


def _failed(link: Link, number: int | None) -> None:
    word = connect_failure(number)
    if word is None:
        link.backend_failed()
    else:
        link.finish(abort=True, result=word)


def _connect_stream(loop: asyncio.AbstractEventLoop, link: Link, make_transport: Any) -> None:
    rule = link.rule
    address = rule.connect.address
    assert address is not None
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    except OSError as error:
        _failed(link, error.errno)
        return
    try:
        sock.setblocking(False)
        if rule.src_address:
            sock.bind((rule.src_address, 0))
        status = sock.connect_ex((address, rule.connect.port))
    except OSError as error:
        sock.close()
        _failed(link, error.errno)
        return
    if status not in (0, errno.EINPROGRESS):
        sock.close()
        _failed(link, status)
        return
    fd = sock.fileno()

    def abandon() -> None:
        loop.remove_writer(fd)
        sock.close()

    def writable() -> None:
        loop.remove_writer(fd)
        link.on_abandon = None
        status = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if status:
            sock.close()
            _failed(link, status)
            return
        make_transport(sock, BackendStream(link))

    link.on_abandon = abandon
    loop.add_writer(fd, writable)


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
    """The portable way, for UDP backends and for event loops other than asyncio's own."""
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
        _failed(link, error.errno)
