"""The Prometheus endpoint: `GET /metrics`, served on the `metrics` address only.

The page (``counters``) is written from a copy of the counters (taken on the
event loop, a C-speed copy of a few dicts) and from /proc (``process``), in a
thread of its own: a page of thousands of rules takes a
quarter of a second to write, and the forwarding loop gets the interpreter
back every few milliseconds meanwhile.  One page is written at a time, and
scrapes that come while it is written, or within as long as it took after,
get that page: a scrape storm costs at most about half the interpreter.

The endpoint is bounded as a client of a rule is: a request of at most 8 KiB,
read and answered within 5 s, at most 16 scrapers at once.  A 17th connection
takes the place of the oldest one still sending its request (a slowloris of
reconnecting half-requests cannot keep a real scraper out; one whose request
is in is never dropped); if all 16 are being answered, the new one is closed.
Only `GET /metrics` (and HEAD) is served, other paths get 404 and other
methods 405.  `::` takes IPv4 scrapers too, as a rule's `::` bind does.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from . import process
from .counters import Counters, exposition
from .sockets import bound
from .switching import loop_first

__all__ = ["MetricsServer", "Move", "page", "respond"]

MAX_REQUEST = 8192  # bytes of a request head
TIMEOUT = 5.0  # seconds to read a request and write the answer
MAX_SCRAPERS = 16


def page(counters: Counters, kernel_traffic: Callable[[], list[Any]] | None = None) -> str:
    """The page of a copy of the counters, with the process facts read now (off the loop),
    and the kernel's per-rule counters when ``kernel_traffic`` asks nft for them."""
    if kernel_traffic is not None:
        counters = replace(counters, kernel_traffic=kernel_traffic())
    return exposition(counters, process.read())


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def _head(status: int, length: int) -> bytes:
    extra = "Allow: GET, HEAD\r\n" if status == 405 else ""
    kind = "text/plain; version=0.0.4; charset=utf-8" if status == 200 else "text/plain"
    return (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {length}\r\n{extra}Connection: close\r\n\r\n"
    ).encode("ascii")


def route(request: bytes) -> int:
    """The status one request head gets: 200 for the page.  A pure function."""
    parts = request.split(b"\r\n", 1)[0].split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return 400
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if target != b"/metrics":
        return 404
    if method not in (b"GET", b"HEAD"):
        return 405
    return 200


_BODIES = {400: b"bad request\n", 404: b"not found: try /metrics\n", 405: b"only GET\n"}


def answer(request: bytes, page: bytes) -> tuple[bytes, bytes]:
    """The head and the body of the answer to one request head, ``page`` being the
    page's bytes (used only for a 200).  A pure function."""
    status = route(request)
    if status != 200:
        return _head(status, len(_BODIES[status])), _BODIES[status]
    head_only = request.split(None, 1)[0] == b"HEAD"
    return _head(200, len(page)), b"" if head_only else page


def respond(request: bytes, page: Callable[[], str]) -> bytes:
    """The answer to one request head, whole.  A pure function of the request and page."""
    head, body = answer(request, page().encode("utf-8") if route(request) == 200 else b"")
    return head + body


Builder = Callable[[], str]  # writes the page from a copy of the counters, in a thread


@dataclass(frozen=True)
class Move:
    """The endpoint a new rule set asks for, opened and not yet taken."""

    where: tuple[str, int] | None
    server: asyncio.Server | None
    keep: bool  # the same address: the socket served now stays


class MetricsServer:
    """The endpoint on one address and port; opened, kept or moved on reload.
    ``snapshot``, called on the loop, returns what writes the page off it."""

    def __init__(self, snapshot: Callable[[], Builder]) -> None:
        self.snapshot = snapshot
        self.where: tuple[str, int] | None = None
        self._server: asyncio.Server | None = None
        self._reading: dict[asyncio.StreamWriter, None] = {}  # oldest first
        self._answering = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="rinetd-metrics")
        self._page: bytes | None = None
        self._fresh_until = 0.0  # monotonic time until which the last page is served again
        self._building: asyncio.Future[bytes] | None = None

    async def prepare(self, where: tuple[str, int] | None) -> Move:
        """What serving ``where`` (None: nowhere) takes: an unchanged address keeps its
        socket, a new one is opened now, beside the old (OSError if it cannot be)."""
        if where == self.where:
            return Move(where, None, keep=True)
        new = None
        if where is not None:
            new = await asyncio.start_server(
                self._client, sock=_listening(where), limit=MAX_REQUEST
            )
        return Move(where, new, keep=False)

    def commit(self, move: Move) -> None:
        """Serve where ``move`` says, closing the old endpoint."""
        if move.keep:
            return
        self.close()
        self._server, self.where = move.server, move.where

    def discard(self, move: Move) -> None:
        """Forget a prepared move: its new endpoint is closed, the old one serves on."""
        if move.server is not None:
            move.server.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.where = None

    async def page(self) -> bytes:
        """The page's bytes: the last ones while they are fresh, else a page written and
        encoded now, off the loop (once, for every scrape that waits for it)."""
        loop = asyncio.get_running_loop()
        if self._page is not None and loop.time() < self._fresh_until:
            return self._page
        if self._building is None:
            started = loop.time()
            building = loop.run_in_executor(self._writer, _encoded, self.snapshot())
            self._building = building
            try:
                with loop_first():
                    self._page = await building
            finally:
                self._building = None
            self._fresh_until = loop.time() + (loop.time() - started)
            return self._page
        return await asyncio.shield(self._building)

    def _make_room(self) -> bool:
        """Room for one more scraper: the oldest one still sending its request gives way."""
        if len(self._reading) + self._answering < MAX_SCRAPERS:
            return True
        if not self._reading:
            return False
        oldest = next(iter(self._reading))
        del self._reading[oldest]
        oldest.transport.abort()
        return True

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._make_room():
            writer.close()
            return
        self._reading[writer] = None
        answering = False
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            if writer not in self._reading:
                return  # gave way to a newer scraper meanwhile
            del self._reading[writer]
            self._answering += 1
            answering = True
            page = await asyncio.wait_for(self.page(), TIMEOUT) if route(request) == 200 else b""
            head, body = answer(request, page)
            writer.write(head)
            if body:
                writer.write(body)
            await asyncio.wait_for(writer.drain(), TIMEOUT)
        except (TimeoutError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            pass
        except (ConnectionError, ValueError):
            pass
        finally:
            self._reading.pop(writer, None)
            if answering:
                self._answering -= 1
            writer.close()


def _encoded(build: Builder) -> bytes:
    return build().encode("utf-8")


def _listening(where: tuple[str, int]) -> socket.socket:
    """The endpoint's socket, bound as a rule's is (``::`` takes IPv4 too)."""
    sock = bound(where[0], where[1], socket.SOCK_STREAM)
    try:
        sock.listen(MAX_SCRAPERS)
    except BaseException:
        sock.close()
        raise
    return sock
