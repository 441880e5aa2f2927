"""Real sockets on loopback: backends in threads, rinetd-run (or rinetd 0.73) as a process.

Every process and socket a test starts is stopped by the fixture that made it,
whether the test passes or not.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

from tests.helpers import BIN, compile_config, wait_until

# Ports a test picks, then leaves for rinetd-run to bind, come from below the
# kernel's ephemeral range (32768 and up), where no client socket of any test takes
# them meanwhile, and each pytest-xdist worker has a range of its own.
# (Three ranges for test.sh's three workers: with two, gw0 and gw2 shared one, and a
# test holding 2,000 ports lost one to another worker's rinetd-run now and then.)
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_SPAN = 7000
_FIRST_PORT = 10000 + _SPAN * (_WORKER % 3)
_PICK = random.Random()


def _bound(stack: contextlib.ExitStack, kind: int, host: str) -> socket.socket:
    """A socket bound to a free port of this worker's range, held by ``stack``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        probe = stack.enter_context(socket.socket(family, kind))
        try:
            probe.bind((host, _PICK.randrange(_FIRST_PORT, _FIRST_PORT + _SPAN)))
            return probe
        except OSError:
            probe.close()


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with contextlib.ExitStack() as stack:
        return int(_bound(stack, kind, host).getsockname()[1])


def free_ports(count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1 (all held until every one is chosen)."""
    with contextlib.ExitStack() as stack:
        probes = [_bound(stack, kind, "127.0.0.1") for _ in range(count)]
        return [int(probe.getsockname()[1]) for probe in probes]


def wait_for_tcp(host: str, port: int, timeout: float = 10.0) -> None:
    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        return False

    wait_until(listening, f"a listener on {host}:{port}", timeout)


@dataclass
class _Echo:
    """A loopback server in a thread; ``port`` 0 picks a free one."""

    kind: ClassVar[socket.SocketKind]
    host: str = "127.0.0.1"
    port: int = 0
    _sock: socket.socket | None = None

    def start(self) -> Self:
        self._sock = socket.socket(
            socket.AF_INET6 if ":" in self.host else socket.AF_INET, self.kind
        )
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self.port))
        if self.kind == socket.SOCK_STREAM:
            self._sock.listen(1024)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, args=(self._sock,), daemon=True).start()
        return self

    def _serve(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()


@dataclass
class TcpEcho(_Echo):
    """Echoes, then passes the client's EOF back; counts connections it accepted."""

    kind: ClassVar[socket.SocketKind] = socket.SOCK_STREAM
    accepted: int = 0
    peers: list[str] = field(default_factory=list)

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, peer = sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.peers.append(peer[0])
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(1 << 16):
                    conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)  # until the forwarder closes
            except OSError:
                pass


@dataclass
class UdpEcho(_Echo):
    """Answers every datagram with itself; records their sizes."""

    kind: ClassVar[socket.SocketKind] = socket.SOCK_DGRAM
    received: list[int] = field(default_factory=list)

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                data, peer = sock.recvfrom(1 << 17)
            except OSError:
                return
            if peer is None:  # shut down by stop()
                return
            self.received.append(len(data))
            with contextlib.suppress(OSError):
                sock.sendto(data, peer)


@dataclass
class Forwarder:
    """A running rinetd-run process with its files in ``workdir``; stderr is collected."""

    process: subprocess.Popen[bytes]
    workdir: Path
    rules: Path
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.errors.append(raw.decode(errors="replace").rstrip("\n"))

    def wait_for_stderr(self, text: str, count: int = 1, timeout: float = 10.0) -> None:
        def said() -> bool:
            if sum(text in line for line in self.errors) >= count:
                return True
            if self.process.poll() is not None:
                time.sleep(0.1)  # its last words may still be on the way
                if sum(text in line for line in self.errors) < count:
                    raise AssertionError(f"rinetd-run ended without {text!r}: {self.errors}")
            return False

        wait_until(said, f"rinetd-run to say {text!r} ({self.errors})", timeout)

    def wait_for_reload(self, count: int = 1) -> None:
        """Until a reload is done (each of ``count`` processes says "reloaded:"), not only
        begun."""
        self.wait_for_stderr("reloaded: forwarding", count=count)

    @property
    def log(self) -> Path:
        return self.workdir / "rinetd.log"

    def _lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def log_lines(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until the log holds at least ``count`` lines; return them all."""

        def enough() -> list[str]:
            lines = self._lines()
            return lines if len(lines) >= count else []

        return wait_until(enough, f"{count} log lines", timeout)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> list[str]:
        """Wait until some log line contains ``text``; return all lines."""

        def written() -> list[str]:
            lines = self._lines()
            return lines if any(text in line for line in lines) else []

        return wait_until(written, f"a log line with {text!r}", timeout)

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def children(pid: int) -> list[int]:
    """The processes ``pid`` started that are still there (zombies aside)."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found += [int(child) for child in text.split() if alive(int(child))]
    return found


def alive(pid: int) -> bool:
    """``pid`` is running (not gone, not a zombie nobody reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def threads(pid: int) -> int:
    """Threads of ``pid`` and of every process under it."""
    count = 0
    todo = [pid]
    while todo:
        this = todo.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            count += len(os.listdir(f"/proc/{this}/task"))
        todo += children(this)
    return count


def start_forwarder(
    rules: Path,
    *extra: str,
    ready: bool = True,
    max_files: int | None = None,
    workers: int = 1,
) -> Forwarder:
    """Start rinetd-run (``--workers`` when ``workers`` > 1); with ``ready``, return
    once every worker has its listeners open."""

    def limit() -> None:
        if max_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

    if workers > 1:
        extra = (*extra, "--workers", str(workers))
    process = subprocess.Popen(
        [str(BIN / "rinetd-run"), str(rules), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=limit if max_files is not None else None,
    )
    forwarder = Forwarder(process, rules.parent, rules)
    if ready:
        try:
            forwarder.wait_for_stderr("rinetd-run: forwarding", count=workers)
        except AssertionError:
            forwarder.stop()
            raise
    return forwarder


@contextlib.contextmanager
def running(text: str, workdir: Path, *extra: str) -> Iterator[Forwarder]:
    forwarder = start_forwarder(compile_config(text, workdir), *extra)
    try:
        yield forwarder
    finally:
        forwarder.stop()


def connect_from(source: str, port: int, host: str = "127.0.0.1") -> socket.socket:
    """A TCP connection to ``host:port`` from the loopback address ``source``."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect((host, port))
    return sock


def recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(1 << 20):
        chunks.append(data)
    return b"".join(chunks)


def echo_once(port: int, payload: bytes = b"ping", source: str = "127.0.0.1") -> bytes:
    """``payload`` sent through ``port`` from ``source``, the sending side shut, and all
    that comes back (an echo behind the rule gives ``payload``)."""
    with connect_from(source, port) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)
