"""TCP clients: access control at accept, then bytes from the client into its link.

Backpressure: when one side's send buffer passes the transport's high-water
mark, reading from the other side pauses until it drains, so a slow reader
never makes memory grow.  EOF is passed on with ``write_eof`` (SHUT_WR).
"""

from __future__ import annotations

import asyncio
from typing import cast

from . import logline
from .access import verdict
from .backend import connect_backend
from .context import Listening
from .ends import WRITE_BUFFER_HIGH, FlowControl, StreamEnd
from .link import Link

__all__ = ["ClientStream"]


class ClientStream(FlowControl):
    def __init__(self, listening: Listening) -> None:
        self.listening = listening
        self.link: Link | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        rule, context = self.listening.rule, self.listening.context
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if peer else "?"
        link = Link(rule, client, context.log)
        found = verdict(context.global_access, rule.access, client)
        if found != "allowed":
            transport.abort()  # at once: nothing may reach the backend
            context.log(link.event(logline.DENIED if found == "denied" else logline.NOT_ALLOWED))
            return
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self.link = link
        context.track(link)
        link.opened(StreamEnd(transport))
        connect_backend(link)

    def _peer_end(self) -> StreamEnd | None:
        backend = self.link.backend if self.link else None
        return backend if isinstance(backend, StreamEnd) else None

    def data_received(self, data: bytes) -> None:
        if self.link is not None:
            self.link.from_client(data)

    def eof_received(self) -> bool:
        if self.link is not None:
            self.link.client_closed_write()
        return True  # keep the socket open: the backend may still answer

    def connection_lost(self, exc: Exception | None) -> None:
        if self.link is not None:
            self.link.client_lost()
