"""A TCP socket as a link end, driven by the poller's edge-triggered events.

This end does only what forwarding needs: read when readable and wanted,
``send`` what it is given and keep the rest until writable, ``shutdown
(SHUT_WR)`` for EOF, and tell its link when its send buffer fills (so the
other side stops reading) and when it drains. It remembers whether its socket
is readable and writable (an event says so, ``EAGAIN`` says no more), so
pausing and resuming cost no system call.  Its input (paused, reading, ended)
and output (open, shut after the pending bytes, shut, closing, closed) are
two small states.

Bytes are copied through one shared buffer; once a side is seen moving bulk
(a read of ``SPLICE_FROM`` bytes or more) between two TCP sockets paired by
their link, they go through the kernel with splice(2) (``splice.py``), which
for small messages costs more than it saves.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import splice
from .poller import Poller

if TYPE_CHECKING:
    from .link import Sink

__all__ = ["RECV_SIZE", "SEND_HIGH", "SPLICE_FROM", "TcpEnd"]

RECV_SIZE = 256 * 1024  # bytes taken per read, as asyncio takes
SEND_HIGH = 64 * 1024  # unsent bytes past which the other side is paused
SPLICE_FROM = 32 * 1024  # a read this large marks a side as bulk: splice from then on
READS_PER_EVENT = 4  # then the other sockets get their turn; the rest is read later

_HANGUP = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_READABLE = select.EPOLLIN | _HANGUP
_WRITABLE = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR

# Input states.
_PAUSED, _READING, _ENDED = 0, 1, 2
# Output states, in the order they can follow each other.
_OPEN, _SHUT_AFTER_FLUSH, _SHUT, _CLOSING, _CLOSED = 0, 1, 2, 3, 4

# One receive buffer for every socket of the process: the loop is single-
# threaded and what is read is handed on at once (sent, or copied into a
# pending buffer), so no read allocates and idle connections hold nothing.
_RECEIVED = bytearray(RECV_SIZE)
_VIEW = memoryview(_RECEIVED)


def _nothing() -> None:
    pass


def _ignore(_data: bytes | memoryview) -> None:
    pass


def _count_nothing(_count: int) -> None:
    pass


class TcpEnd:
    streams = True
    __slots__ = (
        "_bulk",
        "_can_read",
        "_can_write",
        "_hangup",
        "_input",
        "_output",
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
        self._input = _PAUSED
        self._output = _OPEN
        self._can_read = False  # the kernel has bytes (or EOF) for us
        self._can_write = True  # the kernel's send buffer has room
        self._hangup = False  # EOF is queued behind the bytes
        self._bulk = False  # large reads seen: splice when paired
        self.on_data: Callable[[bytes | memoryview], None] = _ignore
        self.on_eof: Callable[[], None] = _nothing
        self.on_lost: Callable[[], None] = _nothing
        self.on_full: Callable[[], None] = _nothing
        self.on_drained: Callable[[], None] = _nothing
        self.on_moved: Callable[[int], None] = _count_nothing
        self.peer: TcpEnd | None = None  # the other side, when both are TCP: splice
        if watched:
            poller.handle(sock, self.event)
        else:
            poller.add(sock, self.event)

    @property
    def closed(self) -> bool:
        return self._output == _CLOSED

    # -- wiring (by the link) -------------------------------------------------------

    def serve(self, sink: Sink) -> None:
        """Hand what this end reads and hears to ``sink``, and start reading."""
        self.on_data = sink.data
        self.on_moved = sink.moved
        self.on_eof = sink.eof
        self.on_lost = sink.lost
        self.on_full = sink.full
        self.on_drained = sink.drained
        self.resume_reading()

    def pair(self, other: object) -> None:
        """Both sides are TCP: bulk may move between them with splice(2)."""
        if isinstance(other, TcpEnd) and splice.ENABLED:
            self.peer, other.peer = other, self

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
            if self._input == _READING:
                self._read()

    # -- reading -----------------------------------------------------------------

    def resume_reading(self) -> None:
        if self._input == _PAUSED:
            self._input = _READING
            if self._can_read:
                self.poller.later(self._read_on)

    def pause_reading(self) -> None:
        if self._input == _READING:
            self._input = _PAUSED

    def _read_on(self) -> None:
        if self._input == _READING and self._can_read:
            self._read()

    def _read(self) -> None:
        for _ in range(READS_PER_EVENT):
            peer = self.peer
            if (
                self._bulk
                and peer is not None
                and peer._can_write
                and not peer.pending
                and peer._output < _CLOSING
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
            if not (self._input == _READING and self._can_read):
                return  # paused by the other side, or ended
        self.poller.later(self._read_on)

    def _receive(self) -> int:
        """Read once into the shared buffer and hand it on; -1 when there is nothing more."""
        try:
            count = self.sock.recv_into(_RECEIVED)
        except OSError as error:
            return self._read_failed(error)
        if not count:
            self._end_of_input()
            return -1
        if count >= SPLICE_FROM:
            self._bulk = True
        self.on_data(_VIEW[:count])
        return count

    def _read_failed(self, error: OSError) -> int:
        """-1, after noting why: nothing more to read now, or the socket is gone."""
        if isinstance(error, (BlockingIOError, InterruptedError)):
            self._can_read = False
        else:
            self._lost()
        return -1

    def _end_of_input(self) -> None:
        self._input = _ENDED
        self._can_read = False
        self.on_eof()

    def _splice_to(self, peer: TcpEnd) -> int:
        """Move what is readable to ``peer`` through the kernel, without copying it here."""
        read_end, write_end = splice.pipe()
        try:
            count = os.splice(self.sock.fileno(), write_end, splice.SIZE, flags=splice.FLAGS)
        except OSError as error:
            return self._read_failed(error)
        if not count:
            self._end_of_input()
            return -1
        self.on_moved(count)
        peer._take_from_pipe(read_end, count)
        return count

    def _take_from_pipe(self, read_end: int, count: int) -> None:
        """Send ``count`` bytes waiting in the pipe; keep what the socket refuses as pending."""
        while count:
            try:
                count -= os.splice(read_end, self.sock.fileno(), count, flags=splice.FLAGS)
            except (BlockingIOError, InterruptedError):
                self._can_write = False
                break
            except OSError:
                splice.read_all(read_end, count)
                self._lost()
                return
        if count:
            self._queue(splice.read_all(read_end, count))

    # -- writing -----------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        if self._output >= _CLOSING:
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
        if self.pending:
            return
        if self._output == _CLOSING:
            self._close_now()
        elif self._output == _SHUT_AFTER_FLUSH:
            self._shutdown()

    def write_eof(self) -> None:
        if self._output != _OPEN:
            return
        if self.pending:
            self._output = _SHUT_AFTER_FLUSH
        else:
            self._shutdown()

    def _shutdown(self) -> None:
        self._output = _SHUT
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._lost()

    # -- ending ------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading, send what is pending, then close."""
        if self._output >= _CLOSING:
            return
        self._input = _ENDED
        self._output = _CLOSING
        if not self.pending:
            self._close_now()

    def abort(self) -> None:
        self._close_now()

    def _close_now(self) -> None:
        if self._output == _CLOSED:
            return
        self._output = _CLOSED
        self._input = _ENDED
        self._can_read = False
        if self.peer is not None:
            self.peer.peer = None  # no splicing into a closed socket; no cycle left
            self.peer = None
        self.poller.close(self.sock)

    def _lost(self) -> None:
        self._close_now()
        self.on_lost()
