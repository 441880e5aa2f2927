"""The Prometheus view: counters kept where log events pass, and `GET /metrics` in the
text exposition format, served on the `metrics` address only.

Counting is a few dictionary increments per log event (two events a
connection), done only when `metrics` is set.  The page is written from a copy
of the counters (taken on the event loop, a C-speed copy of a few dicts) and
from /proc, in a thread of its own: a page of thousands of rules takes a
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
import contextlib
import os
import resource
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from . import logline
from .logline import Event
from .ruleset import RuleSet
from .sockets import bound
from .switching import loop_first

__all__ = ["Counters", "MetricsServer", "Move", "counting", "exposition"]

MAX_REQUEST = 8192  # bytes of a request head
TIMEOUT = 5.0  # seconds to read a request and write the answer
MAX_SCRAPERS = 16

RuleKey = tuple[str, int, str]  # bind as written, port, protocol: unique in a rule set
# Words that end a connection that was opened (and count its bytes).
_NOT_AFTER_OPENED = frozenset(
    {
        logline.OPENED,
        logline.DENIED,
        logline.NOT_ALLOWED,
        logline.LIMIT_EXCEEDED,
        logline.ACCEPT_FAILED,
    }
)


@dataclass
class Counters:
    """Everything the page says that is counted rather than read from the system."""

    results: dict[tuple[RuleKey, str], int] = field(default_factory=dict)
    open: dict[RuleKey, int] = field(default_factory=dict)
    bytes_from_client: dict[RuleKey, int] = field(default_factory=dict)
    bytes_to_client: dict[RuleKey, int] = field(default_factory=dict)
    lines: dict[RuleKey, int] = field(default_factory=dict)  # a rule's source line, for labels
    reloads: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0})
    last_reload: float = 0.0  # time of the last good (re)load
    digest: str = ""

    def snapshot(self) -> Counters:
        """A copy the page can be written from while the loop goes on counting."""
        return replace(
            self,
            results=self.results.copy(),
            open=self.open.copy(),
            bytes_from_client=self.bytes_from_client.copy(),
            bytes_to_client=self.bytes_to_client.copy(),
            lines=self.lines.copy(),
            reloads=self.reloads.copy(),
        )

    def rule_set(self, ruleset: RuleSet, digest: str) -> None:
        """The rules now served: their labels (counts of rules gone stay on the page)."""
        for rule in ruleset.rules:
            self.lines[(rule.bind.host, rule.bind.port, rule.bind.protocol)] = rule.line
        self.digest, self.last_reload = digest, time.time()

    def count(self, event: Event) -> None:
        key = (event.bind_host, event.bind_port, event.protocol)
        word = event.result
        self.results[key, word] = self.results.get((key, word), 0) + 1
        if word == logline.OPENED:
            self.open[key] = self.open.get(key, 0) + 1
        elif word not in _NOT_AFTER_OPENED:
            self.open[key] = self.open.get(key, 0) - 1
            self.bytes_from_client[key] = (
                self.bytes_from_client.get(key, 0) + event.bytes_from_client
            )
            self.bytes_to_client[key] = self.bytes_to_client.get(key, 0) + event.bytes_to_client


def counting(log: Callable[[Event], None], counters: Counters) -> Callable[[Event], None]:
    """``log`` that counts each event on the way."""

    def log_and_count(event: Event) -> None:
        counters.count(event)
        log(event)

    return log_and_count


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(key: RuleKey, lines: dict[RuleKey, int], **more: str) -> str:
    bind, port, protocol = key
    pairs = {"bind": bind, "port": str(port), "protocol": protocol}
    line = lines.get(key)
    pairs["line"] = str(line) if line is not None else ""
    pairs.update(more)
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs.items()) + "}"


def _family(out: list[str], name: str, kind: str, text: str) -> None:
    out.append(f"# HELP {name} {text}")
    out.append(f"# TYPE {name} {kind}")


def _one(out: list[str], name: str, kind: str, text: str, value: float) -> None:
    """A family of one unlabelled sample."""
    _family(out, name, kind, text)
    out.append(f"{name} {value}")


def _process(out: list[str]) -> None:
    """The standard process metrics, from /proc and the resource limits."""
    times = os.times()
    cpu = times.user + times.system
    _one(out, "process_cpu_seconds_total", "counter", "User and system CPU time in seconds.", cpu)
    with contextlib.suppress(OSError):
        fds = len(os.listdir("/proc/self/fd"))
        _one(out, "process_open_fds", "gauge", "Number of open file descriptors.", fds)
    most = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    _one(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.", most)
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/statm") as statm:
            pages = [int(p) * os.sysconf("SC_PAGE_SIZE") for p in statm.read().split()[:2]]
        text = "Virtual memory size in bytes."
        _one(out, "process_virtual_memory_bytes", "gauge", text, pages[0])
        text = "Resident memory size in bytes."
        _one(out, "process_resident_memory_bytes", "gauge", text, pages[1])
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime"))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
        text = "Start time of the process since unix epoch in seconds."
        _one(out, "process_start_time_seconds", "gauge", text, started)


def exposition(counters: Counters) -> str:
    """The page, in the Prometheus text format (version 0.0.4).  A rule's key holds its
    bind's protocol, so a UDP rule's sessions stay UDP after the rule is removed."""
    out: list[str] = []
    lines = counters.lines
    _family(
        out,
        "rinetd_run_connections_total",
        "counter",
        "Connections (TCP) or sessions (UDP) by rule and log result word.",
    )
    for (key, word), value in sorted(counters.results.items()):
        out.append(f"rinetd_run_connections_total{_labels(key, lines, result=word)} {value}")
    _family(out, "rinetd_run_connections_open", "gauge", "TCP connections open now, by rule.")
    for key, value in sorted(counters.open.items()):
        if key[2] != "udp":
            out.append(f"rinetd_run_connections_open{_labels(key, lines)} {value}")
    _family(out, "rinetd_run_udp_sessions_open", "gauge", "UDP sessions open now, by rule.")
    for key, value in sorted(counters.open.items()):
        if key[2] == "udp":
            out.append(f"rinetd_run_udp_sessions_open{_labels(key, lines)} {value}")
    for name, values, text in (
        ("rinetd_run_client_bytes_total", counters.bytes_from_client, "Bytes from clients"),
        ("rinetd_run_backend_bytes_total", counters.bytes_to_client, "Bytes from backends"),
    ):
        _family(out, name, "counter", text + " by rule, counted when a connection ends.")
        for key, value in sorted(values.items()):
            out.append(f"{name}{_labels(key, lines)} {value}")
    _family(out, "rinetd_run_reloads_total", "counter", "Rule set reloads (SIGHUP) by outcome.")
    for outcome, value in sorted(counters.reloads.items()):
        out.append(f'rinetd_run_reloads_total{{result="{outcome}"}} {value}')
    _one(
        out,
        "rinetd_run_last_reload_success_timestamp_seconds",
        "gauge",
        "When the rule set now served was loaded.",
        counters.last_reload,
    )
    _family(out, "rinetd_run_ruleset_info", "gauge", "The rule set now served, by its digest.")
    out.append(f'rinetd_run_ruleset_info{{digest="{_escape(counters.digest)}"}} 1')
    _process(out)
    return "".join(line + "\n" for line in out)


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
