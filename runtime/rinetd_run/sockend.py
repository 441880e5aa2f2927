"""A TCP socket as a link end, driven straight from the event loop's selector.

asyncio's transports cost more to set up and tear down than forwarding a short
connection costs in all (a third of each churned connection went there). This
end does only what forwarding needs: ``recv`` when readable, ``send`` what it
is given and keep the rest until writable, ``shutdown(SHUT_WR)`` for EOF, and
tell its link when its send buffer fills (so the other side stops reading)
and when it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
from collections.abc import Callable

from .link import Link

__all__ = ["RECV_SIZE", "SEND_HIGH", "SocketEnd"]

RECV_SIZE = 256 * 1024  # bytes taken per read, as asyncio takes
SEND_HIGH = 64 * 1024  # unsent bytes past which the other side is paused

# One receive buffer for every socket of the process: the loop is single-
# threaded and what is read is handed on at once (sent, or copied into a
# pending buffer), so no read allocates and idle connections hold nothing.
_RECEIVED = bytearray(RECV_SIZE)
_VIEW = memoryview(_RECEIVED)


_SPLICE = hasattr(os, "splice") and not os.environ.get("RINETD_RUN_NO_SPLICE")
_pipes: dict[int, tuple[int, int]] = {}


def _pipe() -> tuple[int, int]:
    """One pipe per process, for splice(2) between two TCP sockets.

    It is empty between any two callbacks of the loop (what the receiving side
    cannot take at once is read back out into its pending buffer), so every
    connection of the process shares it and none holds descriptors for it.
    Keyed by pid: ``--workers`` forks, and two processes must never share one.
    """
    pid = os.getpid()
    if pid not in _pipes:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, RECV_SIZE)
        _pipes[pid] = (read_end, write_end)
    return _pipes[pid]


_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


def _nothing() -> None:
    pass


def _ignore(_data: memoryview) -> None:
    pass


def _count_nothing(_count: int) -> None:
    pass


class SocketEnd:
    streams = True
    __slots__ = (
        "_closing",
        "_eof_after_flush",
        "_reading",
        "_writing",
        "closed",
        "eof_seen",
        "fd",
        "loop",
        "on_data",
        "on_drained",
        "on_eof",
        "on_full",
        "on_lost",
        "on_moved",
        "peer",
        "pending",
        "sock",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.pending = bytearray()
        self.closed = False
        self.eof_seen = False
        self._reading = False
        self._writing = False
        self._closing = False
        self._eof_after_flush = False
        self.on_data: Callable[[memoryview], None] = _ignore
        self.on_eof: Callable[[], None] = _nothing
        self.on_lost: Callable[[], None] = _nothing
        self.on_full: Callable[[], None] = _nothing
        self.on_drained: Callable[[], None] = _nothing
        self.on_moved: Callable[[int], None] = _count_nothing
        self.peer: SocketEnd | None = None  # the other side, when both are TCP: splice

    # -- wiring ------------------------------------------------------------------

    def serve_client(self, link: Link) -> None:
        """Feed ``link`` as its client side, and start reading."""
        self.on_data = link.from_client
        self.on_eof = link.client_closed_write
        self.on_lost = link.client_lost
        self.on_full = lambda: link.backend.pause_reading() if link.backend else None
        self.on_drained = lambda: link.backend.resume_reading() if link.backend else None
        self.resume_reading()

    def serve_backend(self, link: Link) -> None:
        """Feed ``link`` as its backend side, and start reading."""
        if isinstance(link.client, SocketEnd) and _SPLICE:
            self.peer, link.client.peer = link.client, self
            link.client.on_moved = link.moved_from_client
            self.on_moved = link.moved_to_client
        self.on_data = link.from_backend
        self.on_eof = link.backend_closed_write
        self.on_lost = link.backend_lost
        self.on_full = lambda: link.client.pause_reading() if link.client else None
        self.on_drained = lambda: link.client.resume_reading() if link.client else None
        self.resume_reading()

    # -- reading -----------------------------------------------------------------

    def resume_reading(self) -> None:
        if not (self._reading or self.closed or self.eof_seen or self._closing):
            self._reading = True
            self.loop.add_reader(self.fd, self._readable)

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.fd)

    def _readable(self) -> None:
        peer = self.peer
        if peer is not None and not peer.pending and not (peer.closed or peer._closing):
            self._splice_to(peer)
            return
        try:
            count = self.sock.recv_into(_RECEIVED)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost()
            return
        if count:
            self.on_data(_VIEW[:count])
            return
        self.eof_seen = True
        self.pause_reading()
        self.on_eof()

    def _splice_to(self, peer: SocketEnd) -> None:
        """Move what is readable to ``peer`` through the kernel, without copying it here."""
        try:
            count = os.splice(self.fd, _pipe()[1], RECV_SIZE, flags=_SPLICE_FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost()
            return
        if not count:
            self.eof_seen = True
            self.pause_reading()
            self.on_eof()
            return
        self.on_moved(count)
        peer._take_from_pipe(count)

    def _take_from_pipe(self, count: int) -> None:
        """Send ``count`` bytes waiting in the pipe; keep what the socket refuses as pending."""
        while count:
            try:
                count -= os.splice(_pipe()[0], self.fd, count, flags=_SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                _discard(count)
                self._lost()
                return
        if count:
            self._queue(_read_all(count))

    # -- writing -----------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        if self.closed or self._closing:
            return
        if not self.pending:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._lost()
                return
            if sent == len(data):
                return
            data = data[sent:]
        self._queue(data)

    def _queue(self, data: bytes | memoryview) -> None:
        """Keep ``data`` until the socket is writable; pause the other side past SEND_HIGH."""
        if not self._writing:
            self._writing = True
            self.loop.add_writer(self.fd, self._writable)
        was_below = len(self.pending) <= SEND_HIGH
        self.pending += data
        if was_below and len(self.pending) > SEND_HIGH:
            self.on_full()

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost()
            return
        was_above = len(self.pending) > SEND_HIGH
        del self.pending[:sent]
        if was_above and len(self.pending) <= SEND_HIGH:
            self.on_drained()
        if self.pending or self.closed:
            return
        self._writing = False
        self.loop.remove_writer(self.fd)
        if self._closing:
            self._close_now()
        elif self._eof_after_flush:
            self._shutdown()

    def write_eof(self) -> None:
        if self.closed:
            return
        if self.pending:
            self._eof_after_flush = True
        else:
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._lost()

    # -- ending ------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading, send what is pending, then close."""
        if self.closed:
            return
        self.pause_reading()
        self._closing = True
        if not self.pending:
            self._close_now()

    def abort(self) -> None:
        self._close_now()

    def _close_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.peer is not None:
            self.peer.peer = None  # no splicing into a closed socket; no cycle left
            self.peer = None
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.fd)
        if self._writing:
            self._writing = False
            self.loop.remove_writer(self.fd)
        self.sock.close()

    def _lost(self) -> None:
        self._close_now()
        self.on_lost()


def _read_all(count: int) -> bytes:
    """Exactly ``count`` bytes from the shared pipe (they are there: splice put them in)."""
    chunks = []
    while count:
        chunk = os.read(_pipe()[0], count)
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _discard(count: int) -> None:
    _read_all(count)
