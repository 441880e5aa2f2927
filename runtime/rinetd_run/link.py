"""One forwarded connection (or UDP session) between a client and the backend.

``Link`` keeps the byte counts, knows which side closed first and writes the
log lines; it moves bytes only through the ``End`` objects it is given, so
TCP and UDP ends combine freely (tcp->udp and udp->tcp rules included), and
it is tested in-process with fake ends.  It is where the two ends are wired:
each end hands what it reads and hears to a ``Sink`` of the link's methods,
and two TCP ends are paired for splice(2).

How a link ends is one small state, ``closed_first``: None while both sides
are open, then ``"client"`` or ``"backend"``, set only by the methods below.
It decides the closing word: the backend first is ``done-local-closed``, the
client first ``done-remote-closed``, as in 0.73.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from . import logline
from .logline import Event
from .ruleset import Rule

if TYPE_CHECKING:
    from .balance import PoolTry

__all__ = ["End", "Link", "Side", "Sink"]

Side = Literal["client", "backend"]


class Sink(NamedTuple):
    """Where an end sends what happens to it: the link's methods for that side."""

    data: Callable[[bytes | memoryview], None]  # bytes read
    moved: Callable[[int], None]  # bytes the kernel moved to the other end (splice)
    eof: Callable[[], None]  # the peer will send no more
    lost: Callable[[], None]  # the socket failed or was reset
    full: Callable[[], None]  # this end cannot take more yet: pause the other
    drained: Callable[[], None]  # this end can take more: resume the other


class End(Protocol):
    """One side of a link, as the link sees it."""

    @property
    def streams(self) -> bool:
        """True for TCP; a datagram end has no EOF, so the other side's EOF ends the link."""
        ...

    def serve(self, sink: Sink) -> None: ...
    def pair(self, other: object) -> None: ...
    def write(self, data: bytes | memoryview) -> None: ...
    def write_eof(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


_CLOSING_WORD: dict[Side | None, str] = {
    "backend": logline.LOCAL_CLOSED,
    "client": logline.REMOTE_CLOSED,
    None: logline.REMOTE_CLOSED,  # ended from outside (stop, grace): as 0.73 logs it
}


class Link:
    # Client data held while the backend connection is being made; past this
    # the client is paused, so memory stays bounded.
    PENDING_LIMIT = 256 * 1024
    __slots__ = (
        "_log",
        "_pending",
        "_pending_eof",
        "_pending_size",
        "backend",
        "backend_eof",
        "bytes_from_client",
        "bytes_to_client",
        "client",
        "client_address",
        "client_eof",
        "client_port",
        "closed_first",
        "finished",
        "on_abandon",
        "on_connect_expired",
        "on_finish",
        "on_traffic",
        "pool",
        "preamble",
        "rule",
    )

    def __init__(
        self, rule: Rule, client_address: str, log: Callable[[Event], None], client_port: int = 0
    ) -> None:
        self.rule = rule
        self.client_address = client_address
        self.client_port = client_port
        self._log = log
        self.client: End | None = None
        self.backend: End | None = None
        self.bytes_from_client = 0
        self.bytes_to_client = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._pending_eof = False
        self.client_eof = False
        self.backend_eof = False
        self.closed_first: Side | None = None
        self.finished = False
        self.on_finish: Callable[[Link], None] | None = None
        self.on_traffic: Callable[[], None] | None = None  # UDP sessions: idle timer refresh
        self.on_abandon: Callable[[], None] | None = None  # drops a backend connect under way
        self.preamble = b""  # sent to the backend before any client byte (PROXY header)
        self.pool: PoolTry | None = None  # a pool rule's member and those tried
        # A pool's connect past its time moves to the next member instead of failing.
        self.on_connect_expired: Callable[[], None] | None = None

    def connect_expired(self) -> None:
        """The backend connect took longer than it may: fail over, or fail."""
        if self.on_connect_expired is not None:
            self.on_connect_expired()
        else:
            self.backend_failed()

    def touch(self) -> None:
        if self.on_traffic is not None:
            self.on_traffic()

    def event(self, result: str) -> Event:
        return logline.rule_event(
            self.rule,
            self.client_address,
            self.bytes_from_client,
            self.bytes_to_client,
            result,
            self.client_port,
        )

    def _closed_by(self, side: Side) -> None:
        if self.closed_first is None:
            self.closed_first = side

    # -- wiring: the one place ends are joined ------------------------------------

    def opened(self, client: End) -> None:
        """The client is admitted: log `opened` and start reading it."""
        self.client = client
        self._log(self.event(logline.OPENED))
        client.serve(self._sink("client"))

    def backend_ready(self, backend: End) -> None:
        """The backend is connected: wire it, pair it with the client, send what waited."""
        self.backend = backend
        if self.finished:
            backend.close()
            return
        backend.serve(self._sink("backend"))
        if self.client is not None:
            self.client.pair(backend)
        if self.preamble:  # with what the client sent meanwhile: one write
            backend.write(b"".join((self.preamble, *self._pending)))
        else:
            for chunk in self._pending:
                backend.write(chunk)
        self._pending.clear()
        if self._pending_size >= self.PENDING_LIMIT and self.client:
            self.client.resume_reading()
        self._pending_size = 0
        if self._pending_eof:
            if self._done():
                self.finish(abort=False)
            else:
                backend.write_eof()

    def backend_failed(self) -> None:
        """The backend could not be reached: logged as the backend closing first, as 0.73 does,
        even when the client had already sent its EOF."""
        self.closed_first = "backend"
        self.finish(abort=False)

    def _sink(self, side: Side) -> Sink:
        """What an end on ``side`` reports to: this link's methods for that side."""
        client = side == "client"
        other: Side = "backend" if client else "client"
        return Sink(
            self.from_client if client else self.from_backend,
            self.moved_from_client if client else self.moved_to_client,
            self.client_closed_write if client else self.backend_closed_write,
            # A bound method, not a partial: a partial holds a bound method and a tuple,
            # ~260 bytes more per idle link (bench/ab.py saw it).
            self.client_lost if client else self.backend_lost,
            partial(self._reading, other, False),
            partial(self._reading, other, True),
        )

    def _reading(self, side: Side, wanted: bool) -> None:
        """Back-pressure: one side's full (or drained) send buffer pauses (or resumes)
        reading on the other."""
        end = self.client if side == "client" else self.backend
        if end is not None:
            end.resume_reading() if wanted else end.pause_reading()

    # -- data ------------------------------------------------------------------

    def from_client(self, data: bytes | memoryview) -> None:
        self.bytes_from_client += len(data)
        if self.backend is not None:
            self.backend.write(data)
            return
        self._pending.append(bytes(data))  # the reader's buffer is reused
        self._pending_size += len(data)
        if self._pending_size >= self.PENDING_LIMIT and self.client:
            self.client.pause_reading()

    def moved_from_client(self, count: int) -> None:
        """Bytes the kernel moved from the client to the backend (splice)."""
        self.bytes_from_client += count

    def moved_to_client(self, count: int) -> None:
        self.bytes_to_client += count

    def from_backend(self, data: bytes | memoryview) -> None:
        self.bytes_to_client += len(data)
        if self.client is not None:
            self.client.write(data)

    # -- ends ------------------------------------------------------------------

    def client_closed_write(self) -> None:
        """EOF from the client: pass it on, keep the other direction flowing."""
        self._closed_by("client")
        self.client_eof = True
        if self._done():
            # Closing sends the backend the FIN a shutdown would, one system call fewer.
            self.finish(abort=False)
        elif self.backend is not None:
            self.backend.write_eof()
        elif not self._pending:
            # Gone before the backend answered, having sent nothing: the connect is
            # abandoned rather than left to hold two descriptors for minutes.
            self.finish(abort=False)
        else:
            self._pending_eof = True

    def backend_closed_write(self) -> None:
        self._closed_by("backend")
        self.backend_eof = True
        if self._done():
            self.finish(abort=False)
        elif self.client is not None:
            self.client.write_eof()

    def client_lost(self) -> None:
        self._lost("client")

    def backend_lost(self) -> None:
        self._lost("backend")

    def _lost(self, side: Side) -> None:
        """An end is gone (reset, or closed after its EOF): the link ends, aborted unless
        that side had said EOF first."""
        self._closed_by(side)
        self.finish(abort=not (self.client_eof if side == "client" else self.backend_eof))

    def session_ended(self) -> None:
        """A UDP session ends without an EOF, idle for its timeout or the least recently
        used of a rule at max-udp-connections: as if the client had gone."""
        self._closed_by("client")
        self.finish(abort=False)

    def _done(self) -> bool:
        """Nothing more can flow: both sides sent EOF, or one side is datagrams (which
        have no EOF, so the other side's EOF ends the link)."""
        datagrams = any(end is not None and not end.streams for end in (self.client, self.backend))
        return (self.client_eof and self.backend_eof) or datagrams

    def finish(self, *, abort: bool, result: str | None = None) -> None:
        """End the link once: close both ends and write the closing log line."""
        if self.finished:
            return
        self.finished = True
        if self.on_abandon is not None:
            self.on_abandon()
            self.on_abandon = None
        for end in (self.client, self.backend):
            if end is not None:
                end.abort() if abort else end.close()
        self._log(self.event(result or _CLOSING_WORD[self.closed_first]))
        if self.on_finish is not None:
            self.on_finish(self)
