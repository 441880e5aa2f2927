"""TCP forwarding through a real rinetd-run on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rinetd_run.acceptor import BACKOFF
from tests.helpers import compile_config, parse_common, parse_tab, wait_until
from tests.runtime.harness import (
    TcpEcho,
    connect_from,
    free_port,
    recv_all,
    running,
    start_forwarder,
)


def _round_trip(sock: socket.socket, payload: bytes) -> bytes:
    def send() -> None:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(daemon=True, target=send)
    sender.start()
    echoed = recv_all(sock)
    sender.join()
    return echoed


@pytest.mark.parametrize("size", [0, 1, 65_536, 1_000_003, 64 * 1024 * 1024])
@pytest.mark.parametrize("splice", [True, False], ids=["splice", "recv-send"])
def test_payload_arrives_intact(
    tmp_path: Path, tcp_echo: TcpEcho, size: int, splice: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not splice:
        monkeypatch.setenv("RINETD_RUN_NO_SPLICE", "1")  # the copying path, as without splice(2)
    port = free_port()
    payload = os.urandom(size)
    with running(f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\nlogfile LOG\n", tmp_path) as fw:
        with connect_from("127.0.0.1", port) as sock:
            echoed = _round_trip(sock, payload)
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
        lines = fw.log_lines(2)
    fields = lines[1].split("\t")
    assert fields[6:] == [str(size), str(size), "done-remote-closed"]


def test_500_concurrent_connections(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    port = free_port()
    with running(f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path):
        socks = [connect_from("127.0.0.1", port) for _ in range(500)]
        try:
            payloads = {s.fileno(): os.urandom(4096) for s in socks}
            for s in socks:
                s.sendall(payloads[s.fileno()])
            for s in socks:
                got = b""
                while len(got) < 4096:
                    got += s.recv(4096 - len(got))
                assert got == payloads[s.fileno()]
        finally:
            for s in socks:
                s.close()
    assert tcp_echo.accepted == 500


@contextlib.contextmanager
def _answer_after_eof(
    answer: bytes,
) -> Iterator[tuple[int, list[bytes], threading.Event]]:
    """A backend that reads the client to EOF, only then sends ``answer`` and closes: a
    forwarder that closed instead of half-closing would lose the answer.  The event says
    that the forwarder's connection to it is made."""
    backend = socket.socket()
    backend.bind(("127.0.0.1", 0))
    backend.listen()
    received: list[bytes] = []
    connected = threading.Event()

    def serve() -> None:
        conn, _ = backend.accept()
        connected.set()
        with conn:
            received.append(recv_all(conn))
            conn.sendall(answer)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield backend.getsockname()[1], received, connected
    finally:
        backend.close()
        server.join(timeout=10)


def test_half_close_from_the_client(tmp_path: Path) -> None:
    """The client stops sending; the backend answers only after that EOF, and the answer
    still arrives."""
    port = free_port()
    with _answer_after_eof(b"answer after your EOF") as (backend, received, connected):
        conf = f"127.0.0.1 {port} 127.0.0.1 {backend}\nlogfile LOG\n"
        with running(conf, tmp_path) as fw, connect_from("127.0.0.1", port) as sock:
            # The EOF must find the link connected (before, it waits with the link's
            # pending data, another path that test_link covers).
            assert connected.wait(10)
            time.sleep(0.2)
            sock.sendall(b"question")
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"answer after your EOF"
            assert received == [b"question"]
            done = parse_tab(fw.log_lines(2)[1])
    assert (done["bytes_in"], done["bytes_out"], done["result"]) == (
        "8",
        "21",
        "done-remote-closed",
    )


def test_half_close_from_the_backend(tmp_path: Path) -> None:
    """The backend says all it has and shuts its side; the client can still send."""
    backend = socket.socket()
    backend.bind(("127.0.0.1", 0))
    backend.listen()
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = backend.accept()
        with conn:
            conn.sendall(b"banner")
            conn.shutdown(socket.SHUT_WR)
            received.append(recv_all(conn))

    server = threading.Thread(daemon=True, target=serve)
    server.start()
    port = free_port()
    try:
        conf = f"127.0.0.1 {port} 127.0.0.1 {backend.getsockname()[1]}\nlogfile LOG\n"
        with running(conf, tmp_path) as fw:
            with connect_from("127.0.0.1", port) as sock:
                assert recv_all(sock) == b"banner"  # EOF passed on to the client
                sock.sendall(b"after the backend's EOF")
                sock.shutdown(socket.SHUT_WR)
                server.join(timeout=10)
            assert received == [b"after the backend's EOF"]
            assert fw.log_lines(2)[1].split("\t")[6:] == ["23", "6", "done-local-closed"]
    finally:
        backend.close()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _kernel_buffer_ceiling() -> int:
    """The most the kernel may hold in the forwarder's two sockets of one link: a receive
    buffer that autotuning grows up to tcp_rmem's maximum, a send buffer up to tcp_wmem's."""
    rmem = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return rmem + wmem


def test_slow_reader_keeps_memory_bounded(tmp_path: Path) -> None:
    """A backend that does not read: the client is paused, the forwarder does not grow."""
    fixed = 256 * 1024  # the client's and the backend's own buffers, so they are known
    backend = socket.socket()
    backend.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, fixed)
    backend.bind(("127.0.0.1", 0))
    backend.listen()
    port = free_port()
    conf = f"127.0.0.1 {port} 127.0.0.1 {backend.getsockname()[1]}\n"
    allowance = 8 * 1024 * 1024  # what the forwarder may hold in its own memory
    # Kernel buffers on all four sockets (Linux doubles a set size) plus the allowance: a
    # forwarder that pushes back stops the client below this, one that does not goes on.
    bound = _kernel_buffer_ceiling() + 2 * 2 * fixed + allowance
    with running(conf, tmp_path) as fw:
        client = connect_from("127.0.0.1", port)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, fixed)
        conn, _ = backend.accept()
        before = _rss_kib(fw.process.pid)
        client.setblocking(False)
        sent, deadline = 0, time.monotonic() + 5
        chunk = b"x" * 65536
        while time.monotonic() < deadline and sent < 2 * bound:
            try:
                sent += client.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        grown = _rss_kib(fw.process.pid) - before
        assert sent < bound, f"nothing pushed back on the client: {sent} bytes taken"
        assert grown < allowance // 1024, f"forwarder grew by {grown} KiB"
        # Now read: everything that was sent arrives.
        conn.setblocking(True)
        client.shutdown(socket.SHUT_WR)
        assert len(recv_all(conn)) == sent
        client.close()
        conn.close()
    backend.close()


def _try_connect(source: str, port: int) -> bytes:
    """Send "ping" and read the answer; b"" when the forwarder closed or reset us."""
    with connect_from(source, port) as sock:
        try:
            sock.sendall(b"ping")
            sock.shutdown(socket.SHUT_WR)
            return recv_all(sock)
        except (ConnectionResetError, BrokenPipeError, OSError):
            return b""


def test_allow_and_deny_global_and_per_rule(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    open_port, guarded_port = free_port(), free_port()
    conf = (
        "allow 127.0.0.*\n"
        "deny 127.0.0.66\n"
        f"127.0.0.1 {open_port} 127.0.0.1 {tcp_echo.port}\n"
        f"127.0.0.1 {guarded_port} 127.0.0.1 {tcp_echo.port}\n"
        "allow 127.0.0.1?\n"
        "deny 127.0.0.13\n"
        "logfile LOG\n"
    )
    with running(conf, tmp_path) as fw:
        assert _try_connect("127.0.0.2", open_port) == b"ping"
        assert _try_connect("127.0.0.66", open_port) == b""  # global deny
        assert _try_connect("127.1.0.1", open_port) == b""  # no global allow matches
        assert _try_connect("127.0.0.12", guarded_port) == b"ping"
        assert _try_connect("127.0.0.2", guarded_port) == b""  # per-rule allow misses
        assert _try_connect("127.0.0.13", guarded_port) == b""  # per-rule deny
        lines = fw.log_lines(8)
    assert tcp_echo.accepted == 2  # no rejected client reached the backend
    results = [(line.split("\t")[1], line.split("\t")[3], line.split("\t")[8]) for line in lines]
    assert results == [
        ("127.0.0.2", str(open_port), "opened"),
        ("127.0.0.2", str(open_port), "done-remote-closed"),
        ("127.0.0.66", str(open_port), "denied"),
        ("127.1.0.1", str(open_port), "not-allowed"),
        ("127.0.0.12", str(guarded_port), "opened"),
        ("127.0.0.12", str(guarded_port), "done-remote-closed"),
        ("127.0.0.2", str(guarded_port), "not-allowed"),
        ("127.0.0.13", str(guarded_port), "denied"),
    ]


def test_dead_backend_is_logged_and_the_client_closed(tmp_path: Path) -> None:
    port, dead = free_port(), free_port()
    with running(f"127.0.0.1 {port} 127.0.0.1 {dead}\nlogfile LOG\nlogcommon\n", tmp_path) as fw:
        assert _try_connect("127.0.0.1", port) == b""
        lines = fw.log_lines(2)
    parsed = [parse_common(line) for line in lines]
    assert [p["result"] for p in parsed] == ["opened", "done-local-closed"]
    assert parsed[1]["bind_port"] == str(port) and parsed[1]["connect_port"] == str(dead)
    # Whether "ping" was read before the refusal came back is a race, in 0.73 too;
    # if it was, it is counted.
    assert parsed[1]["bytes_in"] in ("0", "4")
    assert parsed[1]["bytes_out"] == "0"


def test_unusable_src_address_is_local_connect_failed(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    port = free_port()
    conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port} [src=192.0.2.1]\nlogfile LOG\n"
    with running(conf, tmp_path) as fw:
        assert _try_connect("127.0.0.1", port) == b""
        lines = fw.log_lines(2)
    assert [line.split("\t")[8] for line in lines] == ["opened", "local-connect-failed -"]
    assert tcp_echo.accepted == 0


def test_src_option_sets_the_backend_source(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    port = free_port()
    conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port} [src=127.0.0.9]\n"
    with running(conf, tmp_path):
        assert _try_connect("127.0.0.1", port) == b"ping"
    assert tcp_echo.peers == ["127.0.0.9"]


def test_ipv6_and_dual_stack(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    """`::` takes IPv4 clients too; they are matched as ::ffff:a.b.c.d, as in 0.73."""
    port = free_port(host="::")
    conf = f":: {port} 127.0.0.1 {tcp_echo.port}\nallow ::ffff:127.0.0.5\nallow ::1\nlogfile LOG\n"
    with running(conf, tmp_path) as fw:
        with connect_from("::1", port, host="::1") as sock:
            assert _round_trip(sock, b"six") == b"six"
        with connect_from("127.0.0.5", port) as sock:
            assert _round_trip(sock, b"four") == b"four"
        assert _try_connect("127.0.0.6", port) == b""
        lines = fw.log_lines(5)
    assert [(line.split("\t")[1], line.split("\t")[8]) for line in lines] == [
        ("::1", "opened"),
        ("::1", "done-remote-closed"),
        ("::ffff:127.0.0.5", "opened"),
        ("::ffff:127.0.0.5", "done-remote-closed"),
        ("::ffff:127.0.0.6", "not-allowed"),
    ]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors_backs_off_and_recovers(
    tmp_path: Path, tcp_echo: TcpEcho, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback when descriptors run out all the same (the budget off, as if it
    had miscounted): one failure word, a pause, no spinning, and recovery."""
    monkeypatch.setenv("RINETD_RUN_NO_BUDGET", "1")
    port = free_port()
    conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\nlogfile LOG\n"
    fw = start_forwarder(compile_config(conf, tmp_path), max_files=32)
    clients: list[socket.socket] = []
    try:
        for _ in range(40):  # more than the forwarder can hold
            sock = socket.socket()
            sock.settimeout(5)
            sock.connect(("127.0.0.1", port))  # the kernel completes the handshake
            clients.append(sock)
        fw.wait_for_log("failed -")
        # Over two back-off periods a forwarder that waits uses a sliver of a CPU; one
        # that retries accept at once uses all of one.
        before = _cpu_seconds(fw.process.pid)
        time.sleep(2 * BACKOFF)
        assert _cpu_seconds(fw.process.pid) - before < 0.5 * BACKOFF, "spinning on EMFILE"
        for sock in clients:
            sock.close()
        clients.clear()
        wait_until(lambda: _try_connect("127.0.0.1", port) == b"ping", "accepting again")
        assert fw.process.poll() is None
    finally:
        for sock in clients:
            sock.close()
        fw.stop()
    words = {parse_tab(line)["result"] for line in fw.log.read_text().splitlines()}
    assert words & {"accept-failed -", "local-socket-failed -"}


def test_workers_keep_every_stream_intact(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    """Many streams at once through two worker processes: no byte crosses streams."""
    port = free_port()
    conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n"
    fw = start_forwarder(compile_config(conf, tmp_path), workers=2)
    try:
        results: dict[int, bool] = {}

        def one(number: int) -> None:
            payload = os.urandom(2_000_000)
            with connect_from("127.0.0.1", port) as sock:
                results[number] = _round_trip(sock, payload) == payload

        threads = [threading.Thread(daemon=True, target=one, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert results == dict.fromkeys(range(16), True)
    finally:
        fw.stop()


def _answer_and_close(listener: socket.socket, stop: threading.Event) -> None:
    """A backend like an HTTP/1.0 server: one request line in, one answer, then close
    at once, so the answer and the FIN reach the forwarder together."""

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(20)
            request = b""
            while not request.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            number = int(request.split()[1])
            conn.sendall(_answer(number))

    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


def _answer(number: int) -> bytes:
    return f"answer {number} ".encode() + bytes([number % 251]) * (number % 3000)


def test_short_connections_at_a_churn_keep_every_answer(tmp_path: Path) -> None:
    """Two thousand short connections, twenty at a time: each answer arrives whole and
    ends with EOF, and each connection gets its two log lines with exact byte counts.

    A readiness change the forwarder missed (an answer and its FIN read as one
    event, a side resumed while readable, a closed descriptor number reused in
    the same batch of events) would leave a client waiting here and time out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    stop = threading.Event()
    backend = threading.Thread(daemon=True, target=_answer_and_close, args=(listener, stop))
    backend.start()
    port = free_port()
    failures: list[str] = []
    try:
        conf = f"127.0.0.1 {port} 127.0.0.1 {listener.getsockname()[1]}\nlogfile LOG\n"
        with running(conf, tmp_path) as fw:

            def client(first: int) -> None:
                for number in range(first, 2000, 20):
                    request = f"GET {number} HTTP/1.0\n".encode()
                    try:
                        with connect_from("127.0.0.1", port) as sock:
                            sock.sendall(request)
                            if number % 2:
                                sock.shutdown(socket.SHUT_WR)  # half the clients send EOF too
                            got = recv_all(sock)
                    except OSError as error:
                        failures.append(f"{number}: {error!r}")
                        return  # one stuck connection says enough; fail in seconds
                    if got != _answer(number):
                        failures.append(f"{number}: {len(got)} bytes, not the answer")
                        return

            threads = [threading.Thread(daemon=True, target=client, args=(n,)) for n in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert not failures, failures[:5]
            lines = [parse_tab(line) for line in fw.log_lines(4000, timeout=30)]
    finally:
        stop.set()
        backend.join()
        listener.close()
    closing = [line for line in lines if line["result"] != "opened"]
    assert len(closing) == 2000
    sizes = sorted((int(line["bytes_in"]), int(line["bytes_out"])) for line in closing)
    expected = sorted(
        (len(f"GET {n} HTTP/1.0\n"), len(_answer(n))) for n in range(2000)
    )  # fmt: skip
    assert sizes == expected
    by_size = {len(_answer(n)): n for n in range(2000)}  # the answer's size names its client
    words = {by_size[int(line["bytes_out"])]: line["result"] for line in closing}
    # A client that sent no EOF cannot have closed first: the backend did.
    assert {words[n] for n in range(0, 2000, 2)} == {"done-local-closed"}
    assert {words[n] for n in range(1, 2000, 2)} <= {"done-local-closed", "done-remote-closed"}
