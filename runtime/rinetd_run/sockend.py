"""A TCP socket as a link end, driven by the poller's edge-triggered events.

This end does only what forwarding needs: read when readable and wanted,
``send`` what it is given and keep the rest until writable, ``shutdown
(SHUT_WR)`` for EOF, and tell its link when its send buffer fills (so the
other side stops reading) and when it drains. It remembers whether its socket
is readable and writable (an event says so, ``EAGAIN`` says no more), so
pausing and resuming cost no system call.

Bytes are copied through one shared buffer; once a side is seen moving bulk
(a read of ``SPLICE_FROM`` bytes or more) between two TCP sockets, they go
through the kernel with splice(2) instead, which for small messages costs more
than it saves.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
from collections.abc import Callable

from .link import Link
from .poller import Poller

__all__ = ["RECV_SIZE", "SEND_HIGH", "SPLICE_FROM", "SPLICE_SIZE", "SocketEnd"]

RECV_SIZE = 256 * 1024  # bytes taken per read, as asyncio takes
SEND_HIGH = 64 * 1024  # unsent bytes past which the other side is paused
SPLICE_FROM = 32 * 1024  # a read this large marks a side as bulk: splice from then on
# Bytes moved per splice, and the pipe's size: 1 MiB (Linux's default
# pipe-max-size) took a tenth more through four streams than 256 KiB did.
SPLICE_SIZE = 1024 * 1024
READS_PER_EVENT = 4  # then the other sockets get their turn; the rest is read later

_HANGUP = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_READABLE = select.EPOLLIN | _HANGUP
_WRITABLE = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR

# One receive buffer for every socket of the process: the loop is single-
# threaded and what is read is handed on at once (sent, or copied into a
# pending buffer), so no read allocates and idle connections hold nothing.
_RECEIVED = bytearray(RECV_SIZE)
_VIEW = memoryview(_RECEIVED)

_SPLICE = hasattr(os, "splice") and not os.environ.get("RINETD_RUN_NO_SPLICE")
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_pipe: tuple[int, int] | None = None


def _new_pipe() -> tuple[int, int]:
    """One pipe per process, for splice(2) between two TCP sockets.

    It is empty between any two callbacks of the loop (what the receiving side
    cannot take at once is read back out into its pending buffer), so every
    connection of the process shares it and none holds descriptors for it.
    """
    global _pipe
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, SPLICE_SIZE)
    _pipe = (read_end, write_end)
    return _pipe


def _forget_pipe() -> None:
    global _pipe
    _pipe = None  # --workers forks: two processes must never share one pipe


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pipe)


def _nothing() -> None:
    pass


def _ignore(_data: memoryview) -> None:
    pass


def _count_nothing(_count: int) -> None:
    pass


class SocketEnd:
    streams = True
    __slots__ = (
        "_bulk",
        "_can_read",
        "_can_write",
        "_closing",
        "_eof_after_flush",
        "_hangup",
        "_reading",
        "closed",
        "eof_seen",
        "on_data",
        "on_drained",
        "on_eof",
        "on_full",
        "on_lost",
        "on_moved",
        "peer",
        "pending",
        "poller",
        "sock",
    )

    def __init__(self, poller: Poller, sock: socket.socket, *, watched: bool = False) -> None:
        """``watched``: the poller already has the socket (a backend connect); take its events."""
        self.poller = poller
        self.sock = sock
        self.pending = bytearray()
        self.closed = False
        self.eof_seen = False
        self._reading = False
        self._can_read = False
        self._can_write = True
        self._hangup = False
        self._bulk = False
        self._closing = False
        self._eof_after_flush = False
        self.on_data: Callable[[memoryview], None] = _ignore
        self.on_eof: Callable[[], None] = _nothing
        self.on_lost: Callable[[], None] = _nothing
        self.on_full: Callable[[], None] = _nothing
        self.on_drained: Callable[[], None] = _nothing
        self.on_moved: Callable[[int], None] = _count_nothing
        self.peer: SocketEnd | None = None  # the other side, when both are TCP: splice
        if watched:
            poller.handle(sock, self.event)
        else:
            poller.add(sock, self.event)

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

    # -- events ------------------------------------------------------------------

    def event(self, mask: int) -> None:
        """The socket became readable and/or writable (edge-triggered: once per change)."""
        if mask & _WRITABLE:
            self._can_write = True
            if self.pending:
                self._flush()
        if mask & _READABLE:
            if mask & _HANGUP:
                self._hangup = True  # EOF is queued: read on to it, short reads or not
            self._can_read = True
            if self._reading:
                self._read()

    # -- reading -----------------------------------------------------------------

    def resume_reading(self) -> None:
        if not (self._reading or self.closed or self.eof_seen or self._closing):
            self._reading = True
            if self._can_read:
                self.poller.later(self._read_on)

    def pause_reading(self) -> None:
        self._reading = False

    def _read_on(self) -> None:
        if self._reading and self._can_read:
            self._read()

    def _read(self) -> None:
        for _ in range(READS_PER_EVENT):
            peer = self.peer
            if (
                self._bulk
                and peer is not None
                and peer._can_write
                and not peer.pending
                and not (peer.closed or peer._closing)
            ):
                # A splice may stop short of what is queued (the pipe has so
                # many slots), so only EAGAIN says the socket is empty.
                if self._splice_to(peer) < 0:
                    return
            else:
                count = self._receive()
                if count < 0:
                    return
                if count < RECV_SIZE and not self._hangup:
                    # recv took all that was queued: new bytes bring a new event.
                    self._can_read = False
                    return
            if not (self._reading and self._can_read):
                return  # paused by the other side, or ended
        self.poller.later(self._read_on)

    def _receive(self) -> int:
        """Read once into the shared buffer and hand it on; -1 when there is nothing more."""
        try:
            count = self.sock.recv_into(_RECEIVED)
        except (BlockingIOError, InterruptedError):
            self._can_read = False
            return -1
        except OSError:
            self._lost()
            return -1
        if not count:
            self._end_of_input()
            return -1
        if count >= SPLICE_FROM:
            self._bulk = True
        self.on_data(_VIEW[:count])
        return count

    def _end_of_input(self) -> None:
        self.eof_seen = True
        self._reading = False
        self._can_read = False
        self.on_eof()

    def _splice_to(self, peer: SocketEnd) -> int:
        """Move what is readable to ``peer`` through the kernel, without copying it here."""
        pipe = _pipe or _new_pipe()
        try:
            count = os.splice(self.sock.fileno(), pipe[1], SPLICE_SIZE, flags=_SPLICE_FLAGS)
        except (BlockingIOError, InterruptedError):
            self._can_read = False
            return -1
        except OSError:
            self._lost()
            return -1
        if not count:
            self._end_of_input()
            return -1
        self.on_moved(count)
        peer._take_from_pipe(pipe[0], count)
        return count

    def _take_from_pipe(self, pipe: int, count: int) -> None:
        """Send ``count`` bytes waiting in the pipe; keep what the socket refuses as pending."""
        while count:
            try:
                count -= os.splice(pipe, self.sock.fileno(), count, flags=_SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                self._can_write = False
                break
            except OSError:
                _read_all(pipe, count)
                self._lost()
                return
        if count:
            self._queue(_read_all(pipe, count))

    # -- writing -----------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        if self.closed or self._closing:
            return
        if not self.pending and self._can_write:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._lost()
                return
            if sent == len(data):
                return
            self._can_write = False  # the send buffer is full: an event will say when not
            data = data[sent:]
        self._queue(data)

    def _queue(self, data: bytes | memoryview) -> None:
        """Keep ``data`` until the socket is writable; pause the other side past SEND_HIGH."""
        was_below = len(self.pending) <= SEND_HIGH
        self.pending += data
        if was_below and len(self.pending) > SEND_HIGH:
            self.on_full()

    def _flush(self) -> None:
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            self._can_write = False
            return
        except OSError:
            self._lost()
            return
        was_above = len(self.pending) > SEND_HIGH
        del self.pending[:sent]
        if self.pending:
            self._can_write = False
        if was_above and len(self.pending) <= SEND_HIGH:
            self.on_drained()
        if self.pending or self.closed:
            return
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
        self._reading = False
        self._closing = True
        if not self.pending:
            self._close_now()

    def abort(self) -> None:
        self._close_now()

    def _close_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._reading = False
        self._can_read = False
        if self.peer is not None:
            self.peer.peer = None  # no splicing into a closed socket; no cycle left
            self.peer = None
        self.poller.close(self.sock)

    def _lost(self) -> None:
        self._close_now()
        self.on_lost()


def _read_all(pipe: int, count: int) -> bytes:
    """Exactly ``count`` bytes from the shared pipe (they are there: splice put them in)."""
    chunks = []
    while count:
        chunk = os.read(pipe, count)
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)
