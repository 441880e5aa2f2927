"""The Prometheus view: counters kept where log events pass, and `GET /metrics` in the
text exposition format, served on the `metrics` address only.

Counting is a few dictionary increments per log event (two events a
connection), done only when `metrics` is set.  The page is written from the
counters and from /proc when scraped.  The endpoint is asyncio's stream
server, bounded as a client of a rule is: a request of at most 8 KiB, read and
answered within 5 s, at most 16 scrapers at once (more are closed at once);
only `GET /metrics` (and HEAD) is served, other paths get 404 and other
methods 405.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import logline
from .logline import Event
from .ruleset import RuleSet

__all__ = ["Counters", "MetricsServer", "counting", "exposition"]

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


def exposition(counters: Counters, udp_keys: set[RuleKey]) -> str:
    """The page, in the Prometheus text format (version 0.0.4)."""
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
        if key not in udp_keys:
            out.append(f"rinetd_run_connections_open{_labels(key, lines)} {value}")
    _family(out, "rinetd_run_udp_sessions_open", "gauge", "UDP sessions open now, by rule.")
    for key, value in sorted(counters.open.items()):
        if key in udp_keys:
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


def _answer(status: int, body: bytes, head_only: bool = False) -> bytes:
    extra = "Allow: GET, HEAD\r\n" if status == 405 else ""
    kind = "text/plain; version=0.0.4; charset=utf-8" if status == 200 else "text/plain"
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + (b"" if head_only else body)


def respond(request: bytes, page: Callable[[], str]) -> bytes:
    """The answer to one request head.  A pure function of the request and the page."""
    parts = request.split(b"\r\n", 1)[0].split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return _answer(400, b"bad request\n")
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if target != b"/metrics":
        return _answer(404, b"not found: try /metrics\n")
    if method not in (b"GET", b"HEAD"):
        return _answer(405, b"only GET\n")
    return _answer(200, page().encode("utf-8"), head_only=method == b"HEAD")


class MetricsServer:
    """The endpoint on one address and port; opened, kept or moved on reload."""

    def __init__(self, page: Callable[[], str]) -> None:
        self.page = page
        self.where: tuple[str, int] | None = None
        self._server: asyncio.Server | None = None
        self._active = 0

    async def serve(self, where: tuple[str, int] | None) -> None:
        """Listen on ``where`` (None: nowhere); an unchanged address keeps its socket, a
        new one is opened before the old one is closed (OSError if it cannot be)."""
        if where == self.where:
            return
        new = None
        if where is not None:
            new = await asyncio.start_server(
                self._client, where[0], where[1], limit=MAX_REQUEST, reuse_address=True
            )
        self.close()
        self._server, self.where = new, where

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.where = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._active >= MAX_SCRAPERS:
            writer.close()
            return
        self._active += 1
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            writer.write(respond(request, self.page))
            await asyncio.wait_for(writer.drain(), TIMEOUT)
        except (TimeoutError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            pass
        except (ConnectionError, ValueError):
            pass
        finally:
            self._active -= 1
            writer.close()
