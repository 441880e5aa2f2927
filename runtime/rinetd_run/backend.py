"""Opening the backend side of a link: a TCP connection or a connected UDP socket.

TCP connects are made by hand (non-blocking ``connect``, the socket given to
the poller at once) rather than through ``loop.create_connection``, whose
coroutine, task and futures were a fifth of the cost of each new connection;
the connected socket becomes a ``TcpEnd`` without another system call.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
from typing import cast

from .balance import MemberState
from .context import Context
from .link import Link
from .logline import RESOURCE_ERRORS, connect_failure
from .ruleset import Effective
from .tcp_end import TcpEnd
from .udp_end import UdpBackendEnd

__all__ = ["connect_backend"]

_connecting: set[asyncio.Task[None]] = set()  # strong references until each is done


def connect_backend(link: Link, context: Context, options: Effective) -> None:
    """Start connecting; the link hears of success or failure (or of connect-timeout)."""
    if link.rule.connect.protocol == "tcp":
        _connect_stream(link, context, options)
        return
    task = asyncio.get_running_loop().create_task(_connect_datagrams(link, context, options))
    _connecting.add(task)
    task.add_done_callback(_connecting.discard)


def _failed(link: Link, number: int | None) -> None:
    word = connect_failure(number)
    if word is None:
        link.backend_failed()
    else:
        link.finish(abort=True, result=word)


def _connect_stream(link: Link, context: Context, options: Effective, attempt: int = 0) -> None:
    """Connect to the rule's backend: its address, or for a host name the one ``names``
    knows; a refused or unreachable address gives way to the name's next one."""
    rule, poller, deadlines, names = link.rule, context.poller, context.deadlines, context.names
    known = rule.connect.address
    assert known is not None
    host, refresh = rule.connect.host, options.dns_refresh
    addresses = names.of(host, refresh, known)
    address = addresses[attempt % len(addresses)]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def failed(number: int | None) -> None:
        names.failed(host, refresh)
        if connect_failure(number) is None and attempt + 1 < len(addresses) and not link.finished:
            _connect_stream(link, context, options, attempt + 1)
        elif link.pool is not None and number not in RESOURCE_ERRORS and not link.finished:
            _next_member(link, context, options, number)
        else:
            _failed(link, number)

    try:
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    except OSError as error:
        _failed(link, error.errno)
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if options.keepalive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if rule.local_address:
            sock.bind((rule.local_address, 0))
        status = sock.connect_ex((address, rule.connect.port))
    except OSError as error:
        sock.close()
        failed(error.errno)
        return
    if status not in (0, errno.EINPROGRESS):
        sock.close()
        failed(status)
        return

    def abandon() -> None:
        poller.close(sock)

    def connected(mask: int) -> None:
        # The first event of a connecting socket: writable once connected, an
        # error (with EPOLLERR) if the connect failed.
        link.on_abandon = None
        deadlines.connect_ended(link)
        if mask & select.EPOLLERR or not mask & select.EPOLLOUT:
            status = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            poller.close(sock)
            failed(status or None)
            return
        names.connected(host, refresh)
        if link.pool is not None:
            link.on_connect_expired = None
            context.pools.counted(link.pool.state, link.pool.connected(), "connected")
        end = TcpEnd(poller, sock, watched=True)
        link.backend_ready(end)
        if not end.closed:
            end.event(mask)

    link.on_abandon = abandon
    poller.add(sock, connected)
    timeout = options.connect_timeout
    if link.pool is not None:
        # While another member is left to try, a member gets health-timeout to answer.
        if len(link.pool.tried) < len(link.pool.route.states):
            timeout = min(timeout, link.pool.route.timeout)

        def expired() -> None:
            link.on_connect_expired = None
            if link.on_abandon is not None:
                link.on_abandon()
                link.on_abandon = None
            failed(errno.ETIMEDOUT)

        link.on_connect_expired = expired
    deadlines.connect_started(link, timeout)


def _next_member(link: Link, context: Context, options: Effective, number: int | None) -> None:
    """A pool member did not take the connection: the next one does, at once."""
    assert link.pool is not None
    why = os.strerror(number) if number else "connect failed"
    member = link.pool.state
    changed, chosen = link.pool.failed()
    context.pools.counted(member, changed, f"connect: {why}")
    if isinstance(chosen, MemberState):
        link.rule = link.pool.route.rule_for(chosen)
        _connect_stream(link, context, options)
    else:  # none left, or those left are full: as a backend that refused
        _failed(link, number)


class _BackendDatagrams(asyncio.DatagramProtocol):
    def __init__(self, link: Link) -> None:
        self.link = link

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.DatagramTransport, transport)
        self.link.backend_ready(UdpBackendEnd(transport))

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.link.touch()
        self.link.from_backend(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable for one datagram: UDP has no connection to end


async def _connect_datagrams(link: Link, context: Context, options: Effective) -> None:
    rule = link.rule
    known = rule.connect.address
    assert known is not None
    address = context.names.of(rule.connect.host, options.dns_refresh, known)[0]
    local = (rule.local_address, 0) if rule.local_address else None
    try:
        await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _BackendDatagrams(link),
            remote_addr=(address, rule.connect.port),
            local_addr=local,
        )
    except OSError as error:
        _failed(link, error.errno)
