"""One edge-triggered epoll set for every forwarded TCP socket, drained from one asyncio reader.

asyncio's ``add_reader``/``remove_reader`` cost an ``epoll_ctl`` and several
Python objects at every connect, pause, resume and EOF, and each ready socket
goes through a ``Handle``; that was a fifth of the time of a short connection.
Here each socket joins the set once, for reading and writing (``EPOLLET``),
and leaves it by being closed. An event says only "became readable/writable";
the socket's end remembers that and acts on it when it can, so pausing and
resuming a side are plain flag changes.

Sockets are closed after the batch of events that closed them has been
handled, so a descriptor number cannot be reused while a stale event for its
old socket is still to be dispatched.
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Callable

__all__ = ["EVENTS", "Poller"]

EVENTS = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
BATCH = 512  # events taken per wake-up of the loop

Handler = Callable[[int], None]


class Poller:
    __slots__ = ("_closing", "_dispatching", "_epoll", "_handlers", "_later", "_scheduled", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}
        self._later: list[Callable[[], None]] = []
        self._closing: list[socket.socket] = []
        self._dispatching = False
        self._scheduled = False
        loop.add_reader(self._epoll.fileno(), self._drain)

    def add(self, sock: socket.socket, handler: Handler) -> None:
        """Watch ``sock``; ``handler`` gets the event mask each time it becomes ready."""
        fd = sock.fileno()
        self._handlers[fd] = handler
        self._epoll.register(fd, EVENTS)

    def handle(self, sock: socket.socket, handler: Handler) -> None:
        """Give a watched socket's events to another handler (no system call)."""
        self._handlers[sock.fileno()] = handler

    def close(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` and close it (after the current batch of events)."""
        self._handlers.pop(sock.fileno(), None)
        if self._dispatching:
            self._closing.append(sock)
        else:
            sock.close()

    def later(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the events at hand: for a side that still has bytes
        to read after its share, or that was resumed, without growing the stack."""
        self._later.append(callback)
        if not self._dispatching and not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._drain)

    def shut(self) -> None:
        self.loop.remove_reader(self._epoll.fileno())
        self._epoll.close()

    def _drain(self) -> None:
        self._scheduled = False
        if self._epoll.closed:
            return  # shut at stop, with a later() still queued
        self._dispatching = True
        handlers = self._handlers
        try:
            for fd, mask in self._epoll.poll(0, BATCH):
                handler = handlers.get(fd)
                if handler is not None:
                    try:
                        handler(mask)
                    except Exception as error:  # one broken link must not stall the others
                        self._report(error)
            if self._later:
                later, self._later = self._later, []
                for callback in later:
                    try:
                        callback()
                    except Exception as error:
                        self._report(error)
        finally:
            self._dispatching = False
            if self._closing:
                for sock in self._closing:
                    sock.close()
                self._closing.clear()
            if self._later and not self._scheduled:
                self._scheduled = True
                self.loop.call_soon(self._drain)

    def _report(self, error: Exception) -> None:
        self.loop.call_exception_handler(
            {"message": "error in a TCP link's event handler", "exception": error}
        )
