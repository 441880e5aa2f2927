"""One forwarded connection (or UDP session) between a client and the backend.

``Link`` keeps the byte counts, knows which side closed first and writes the
log lines; it moves bytes only through the ``End`` objects it is given, so
TCP and UDP ends combine freely (tcp->udp and udp->tcp rules included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from . import logline
from .logline import Event
from .ruleset import Rule

__all__ = ["End", "Link"]


class End(Protocol):
    """One side of a link, as the link sees it."""

    @property
    def streams(self) -> bool:
        """True for TCP; a datagram end has no EOF, so the other side's EOF ends the link."""
        ...

    def write(self, data: bytes | memoryview) -> None: ...
    def write_eof(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


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
        "finished",
        "first_closed",
        "on_abandon",
        "on_finish",
        "on_traffic",
        "rule",
    )

    def __init__(self, rule: Rule, client_address: str, log: Callable[[Event], None]) -> None:
        self.rule = rule
        self.client_address = client_address
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
        self.first_closed: str | None = None  # "local" (backend) or "remote" (client)
        self.finished = False
        self.on_finish: Callable[[Link], None] | None = None
        self.on_traffic: Callable[[], None] | None = None  # UDP sessions: idle timer refresh
        self.on_abandon: Callable[[], None] | None = None  # drops a backend connect under way

    def touch(self) -> None:
        if self.on_traffic is not None:
            self.on_traffic()

    def event(self, result: str) -> Event:
        rule = self.rule
        return Event(
            client=self.client_address,
            bind_host=rule.bind.host,
            bind_port=rule.bind.port,
            connect_host=rule.connect.host,
            connect_port=rule.connect.port,
            bytes_from_client=self.bytes_from_client,
            bytes_to_client=self.bytes_to_client,
            result=result,
        )

    def opened(self, client: End) -> None:
        self.client = client
        self._log(self.event(logline.OPENED))

    # -- the backend connection ------------------------------------------------

    def backend_ready(self, backend: End) -> None:
        self.backend = backend
        if self.finished:
            backend.close()
            return
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
        self.first_closed = "local"
        self.finish(abort=False)

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
        self.first_closed = self.first_closed or "remote"
        self.client_eof = True
        if self._done():
            # Closing sends the backend the FIN a shutdown would, one system call fewer.
            self.finish(abort=False)
        elif self.backend is not None:
            self.backend.write_eof()
        else:
            self._pending_eof = True

    def backend_closed_write(self) -> None:
        self.first_closed = self.first_closed or "local"
        self.backend_eof = True
        if self._done():
            self.finish(abort=False)
        elif self.client is not None:
            self.client.write_eof()

    def client_lost(self) -> None:
        self.first_closed = self.first_closed or "remote"
        self.finish(abort=not self.client_eof)

    def backend_lost(self) -> None:
        self.first_closed = self.first_closed or "local"
        self.finish(abort=not self.backend_eof)

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
        if result is None:
            result = logline.LOCAL_CLOSED if self.first_closed == "local" else logline.REMOTE_CLOSED
        self._log(self.event(result))
        if self.on_finish is not None:
            self.on_finish(self)
