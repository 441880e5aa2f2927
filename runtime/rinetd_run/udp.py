"""UDP listeners: one session per client address and port, each with its own backend socket.

A session opens on the first datagram that passes access control, lives while
datagrams flow either way, and ends after the rule's idle timeout.  A rule holds
at most its max-udp-connections (5000 unless set; 0 for no limit of its own) and
the process's descriptor budget (``budget.py``)
bounds them all: past either, the rule's least recently used session ends first,
so a flood from spoofed source ports costs only that rule its idle sessions.  Unlike
0.73, nothing is sent to the backend but the client's own datagrams.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, cast

from .backend import connect_backend
from .context import Binding
from .link import Link
from .udp_end import UdpClientEnd

__all__ = ["UdpListener"]


class _Session:
    def __init__(
        self,
        link: Link,
        timeout: float,
        loop: asyncio.AbstractEventLoop,
        order: OrderedDict[tuple[str, int], _Session],
        key: tuple[str, int],
    ) -> None:
        self.link = link
        self.timeout = timeout
        self.loop = loop
        self.order = order
        self.key = key
        self.last = loop.time()
        self.timer = loop.call_later(timeout, self._expire)
        link.on_traffic = self.touch

    def touch(self) -> None:
        """Traffic either way: the idle clock restarts, and the session is the most
        recently used of its rule."""
        self.last = self.loop.time()
        self.order.move_to_end(self.key)

    def _expire(self) -> None:
        idle = self.loop.time() - self.last
        if idle < self.timeout:
            # Re-arm lazily rather than on every datagram: traffic stays cheap.
            self.timer = self.loop.call_later(self.timeout - idle, self._expire)
            return
        self.link.session_ended()

    def cancel(self) -> None:
        self.timer.cancel()


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, binding: Binding) -> None:
        self.binding = binding
        self.sessions: OrderedDict[tuple[str, int], _Session] = OrderedDict()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.DatagramTransport, transport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        key = (str(addr[0]), int(addr[1]))
        session = self.sessions.get(key)
        if session is None:
            session = self._open(key)
            if session is None:
                return
        session.touch()
        session.link.from_client(data)

    def _make_room(self) -> bool:
        """At the rule's cap or the process's budget, end this rule's least recently used
        session (logged as its normal end); False if there is none to end."""
        context, rule = self.binding.context, self.binding.rule
        cap = self.binding.options.max_udp_connections
        at_cap = bool(cap) and len(self.sessions) >= cap
        if at_cap:
            context.say_once(
                f"udp-cap-{rule.line}",
                f"udp rule of line {rule.line} has {cap} sessions (max-udp-connections): "
                "each new one ends the least recently used",
            )
        if not at_cap and context.udp_may_open():
            return True
        if not self.sessions:
            return False  # the datagram is dropped
        oldest = next(iter(self.sessions.values()))
        oldest.link.session_ended()
        return True

    def _open(self, key: tuple[str, int]) -> _Session | None:
        assert self.transport is not None
        rule = self.binding.rule
        context = self.binding.context
        link = context.admit(self.binding, key[0], key[1])
        if link is None:
            return None
        if not self._make_room():
            if link.on_finish is not None:  # never opened, so nothing is logged for it
                link.on_finish(link)
            return None
        session = _Session(link, rule.timeout, asyncio.get_running_loop(), self.sessions, key)
        self.sessions[key] = session
        context.udp_sessions += 1
        tracked = link.on_finish

        def ended(done: Link) -> None:
            session.cancel()
            self.sessions.pop(key, None)
            context.udp_sessions -= 1
            if tracked is not None:
                tracked(done)

        link.on_finish = ended
        link.opened(UdpClientEnd(self.transport, key))
        connect_backend(link, context, self.binding.options)
        return session

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for one reply: the sessions go on

    def connection_lost(self, exc: Exception | None) -> None:
        for session in list(self.sessions.values()):
            session.link.finish(abort=False)
