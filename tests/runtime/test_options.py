"""The extended language's options, run for real on loopback (IPv4 and IPv6): timeouts,
keepalive, connection limits."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rinetd_run.proxy import header as proxy_header
from tests.helpers import CORPUS, compile_config, parse_tab, wait_until
from tests.runtime.harness import (
    TcpEcho,
    UdpEcho,
    connect_from,
    free_port,
    recv_all,
    running,
    start_forwarder,
)

FAMILIES = pytest.mark.parametrize("host", ["127.0.0.1", "::1"], ids=["ipv4", "ipv6"])


@pytest.fixture
def echo(request: pytest.FixtureRequest) -> Iterator[TcpEcho]:
    callspec = getattr(request.node, "callspec", None)
    host = callspec.params.get("host", "127.0.0.1") if callspec else "127.0.0.1"
    server = TcpEcho(host=host).start()
    yield server
    server.stop()


def _results(log: Path) -> list[str]:
    return [parse_tab(line)["result"] for line in log.read_text().splitlines()]


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    return sock


def _echoes(sock: socket.socket, payload: bytes = b"ping") -> bool:
    sock.sendall(payload)
    got = b""
    with contextlib.suppress(OSError):
        while len(got) < len(payload) and (data := sock.recv(64)):
            got += data
    return got == payload


@FAMILIES
def test_an_idle_connection_ends_and_a_busy_one_does_not(
    host: str, echo: TcpEcho, tmp_path: Path
) -> None:
    port = free_port(host=host)
    conf = f"{host} {port} {host} {echo.port} [idle-timeout=2]\nlogfile LOG\n"
    with running(conf, tmp_path) as fw:
        idle, busy = _connect(host, port), _connect(host, port)
        started = time.monotonic()
        for _ in range(8):  # 4 s of traffic, every half second
            assert _echoes(busy)
            time.sleep(0.5)
        idle.settimeout(1)
        assert idle.recv(1) == b""  # ended by the forwarder
        lines = fw.wait_for_log("done-idle-timeout")
        assert sum("done-idle-timeout" in line for line in lines) == 1
        assert _echoes(busy)  # still open after 4 s
        assert time.monotonic() - started >= 2
        idle.close()
        busy.close()


def _iptables(family_host: str) -> str:
    return "ip6tables" if ":" in family_host else "iptables"


@contextlib.contextmanager
def _black_hole(host: str, port: int) -> Iterator[None]:
    """SYNs to ``host:port`` on lo are dropped (removed again whatever happens)."""
    tool = _iptables(host)
    if os.geteuid() != 0 or shutil.which(tool) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} as root is needed in CI")
        pytest.skip(f"needs root and {tool}")
    rule = ["INPUT", "-i", "lo", "-p", "tcp", "-d", host, "--dport", str(port), "--syn",
            "-j", "DROP"]  # fmt: skip
    subprocess.run([tool, "-I", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run([tool, "-D", *rule], check=False)


@FAMILIES
def test_a_black_holed_backend_ends_the_client_after_connect_timeout(
    host: str, tmp_path: Path
) -> None:
    port, dead = free_port(host=host), free_port(host=host)
    conf = f"{host} {port} {host} {dead} [connect-timeout=2]\nlogfile LOG\n"
    with _black_hole(host, dead), running(conf, tmp_path) as fw:
        client = _connect(host, port)
        started = time.monotonic()
        client.settimeout(10)
        assert recv_all(client) == b""
        waited = time.monotonic() - started
        assert 1.5 <= waited <= 5, waited
        fw.wait_for_log("done-local-closed")  # as a backend that refuses
        assert _results(fw.log) == ["opened", "done-local-closed"]
        client.close()


def _timers(port: int) -> list[str]:
    """`ss -tno` lines of established TCP sockets with ``port`` at either end."""
    done = subprocess.run(
        ["ss", "-tnoH", "state", "established", f"( sport = :{port} or dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


@FAMILIES
@pytest.mark.parametrize("keepalive", ["on", "off"])
def test_keepalive_is_on_both_sockets_of_a_link_unless_off(
    host: str, keepalive: str, echo: TcpEcho, tmp_path: Path
) -> None:
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    port = free_port(host=host)
    conf = f"{host} {port} {host} {echo.port} [keepalive={keepalive}]\n"
    with running(conf, tmp_path):
        client = _connect(host, port)
        assert _echoes(client)
        # Columns: Recv-Q Send-Q Local Peer [timer]; the forwarder's two sockets are the
        # one whose local port is the bind, and the one whose peer is the backend.
        accepted = [line for line in _timers(port) if line.split()[2].endswith(f":{port}")]
        backend = [line for line in _timers(echo.port) if line.split()[3].endswith(f":{echo.port}")]
        assert len(accepted) == 1 and len(backend) == 1, (accepted, backend)
        for line in accepted + backend:
            assert ("timer:(keepalive" in line) == (keepalive == "on"), line
        client.close()


@FAMILIES
def test_a_rule_s_max_connections_refuses_what_is_over_at_once(
    host: str, echo: TcpEcho, tmp_path: Path
) -> None:
    port = free_port(host=host)
    conf = f"{host} {port} {host} {echo.port} [max-connections=3]\nlogfile LOG\n"
    with running(conf, tmp_path) as fw:
        clients = [_connect(host, port) for _ in range(5)]
        served = [c for c in clients if _echoes(c)]
        assert len(served) == 3
        fw.log_lines(5)
        results = _results(fw.log)
        assert results.count("opened") == 3 and results.count("limit-exceeded") == 2
        for client in clients:
            client.close()
        fw.log_lines(8)
        again = _connect(host, port)  # the count went down as they ended
        assert _echoes(again)
        again.close()


@pytest.mark.parametrize(
    ("listen", "backend"),
    [("127.0.0.1", "127.0.0.1"), ("::", "::1")],
    ids=["ipv4", "ipv4 clients of a dual-stack listener"],
)
def test_a_per_client_limit_refuses_one_address_while_another_is_served(
    listen: str, backend: str, tmp_path: Path
) -> None:
    echo = TcpEcho(host=backend).start()
    port = free_port(host=listen)
    conf = f"{listen} {port} {backend} {echo.port} [max-connections-per-client=1]\nlogfile LOG\n"
    try:
        with running(conf, tmp_path) as fw:
            first = connect_from("127.0.0.2", port)
            assert _echoes(first)
            second = connect_from("127.0.0.2", port)
            second.settimeout(5)
            assert recv_all(second) == b""
            other = connect_from("127.0.0.3", port)
            assert _echoes(other)
            lines = fw.wait_for_log("limit-exceeded")
            refused = [parse_tab(line) for line in lines if "limit-exceeded" in line]
            # Counted as 127.0.0.2 on either listener; logged as 0.73 would show it.
            client = "127.0.0.2" if listen != "::" else "::ffff:127.0.0.2"
            assert [r["client"] for r in refused] == [client]
            for sock in (first, second, other):
                sock.close()
    finally:
        echo.stop()


def test_the_global_max_connections_makes_clients_wait_then_serves_them(
    echo: TcpEcho, tmp_path: Path
) -> None:
    port = free_port()
    conf = f"max-connections 2\n127.0.0.1 {port} 127.0.0.1 {echo.port}\nlogfile LOG\n"
    with running(conf, tmp_path) as fw:
        held = [_connect("127.0.0.1", port) for _ in range(2)]
        assert all(_echoes(c) for c in held)
        waiting = _connect("127.0.0.1", port)  # completes in the kernel's backlog
        waiting.sendall(b"later")
        waiting.settimeout(1)
        with pytest.raises(TimeoutError):
            waiting.recv(5)  # not served yet: nothing forwarded
        fw.wait_for_stderr("max-connections 2 reached")
        assert _results(fw.log).count("opened") == 2  # and not refused either
        held[0].close()
        waiting.settimeout(10)
        assert waiting.recv(5) == b"later"
        for sock in (*held, waiting):
            sock.close()


def test_udp_sessions_beyond_max_udp_connections_end_the_least_recently_used(
    tmp_path: Path,
) -> None:
    echo = UdpEcho().start()
    port = free_port(socket.SOCK_DGRAM)
    conf = f"127.0.0.1 {port}/udp 127.0.0.1 {echo.port}/udp [max-udp-connections=3]\n"
    clients = []
    try:
        with running(conf + "logfile LOG\n", tmp_path) as fw:
            for number in range(5):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.settimeout(5)
                sock.bind(("127.0.0.1", 0))
                sock.sendto(b"%d" % number, ("127.0.0.1", port))
                assert sock.recv(16) == b"%d" % number
                clients.append(sock)
            lines = fw.log_lines(7)
            assert sum("done-remote-closed" in line for line in lines) == 2 and len(lines) == 7
            fw.wait_for_stderr("has 3 sessions (max-udp-connections)")
            # The newest still has its session; the oldest was ended and opens a new one.
            clients[4].sendto(b"again", ("127.0.0.1", port))
            assert clients[4].recv(16) == b"again"
            assert _results(fw.log).count("opened") == 5
            clients[0].sendto(b"back", ("127.0.0.1", port))
            assert clients[0].recv(16) == b"back"
            # The reply can arrive before the log line is written (the log never waits).
            wait_until(lambda: _results(fw.log).count("opened") >= 6, "the new session's line")
            assert _results(fw.log).count("opened") == 6
    finally:
        for sock in clients:
            sock.close()
        echo.stop()


def test_a_committed_version_1_rule_set_still_forwards(tmp_path: Path) -> None:
    rules = CORPUS / "v1" / "loopback.json"
    assert json.loads(rules.read_text())["version"] == 1
    echo = TcpEcho(port=29632).start()
    fw = start_forwarder(rules)
    try:
        client = connect_from("127.0.0.1", 29631)
        assert _echoes(client, b"from a version 1 file")
        client.close()
    finally:
        fw.stop()
        echo.stop()


@pytest.mark.parametrize(("host", "version"), [("127.0.0.1", "v1"), ("::1", "v2")])
def test_the_proxy_header_goes_out_before_the_client_says_anything(
    host: str, version: str, tmp_path: Path
) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as backend:
        backend.bind((host, 0))
        backend.listen(4)
        backend.settimeout(10)
        port = free_port(host=host)
        conf = f"{host} {port} {host} {backend.getsockname()[1]} [proxy-protocol={version}]\n"
        with running(conf, tmp_path):
            client = _connect(host, port)  # sends nothing: a server-speaks-first protocol
            conn, _peer = backend.accept()
            conn.settimeout(5)
            cport = client.getsockname()[1]
            expected = (
                f"PROXY TCP4 {host} {host} {cport} {port}\r\n".encode()
                if version == "v1"
                else proxy_header(version, (host, cport), (host, port))  # bytes pinned in unit
            )
            got = b""
            while len(got) < len(expected):
                got += conn.recv(len(expected) - len(got))
            assert got == expected
            client.sendall(b"then the client")
            assert conn.recv(64) == b"then the client"
            conn.close()
            client.close()


def test_a_limit_brought_by_a_reload_counts_what_is_already_open(
    echo: TcpEcho, tmp_path: Path
) -> None:
    port = free_port()
    rule = f"127.0.0.1 {port} 127.0.0.1 {echo.port}"
    with running(f"{rule}\nlogfile LOG\n", tmp_path) as fw:
        held = [_connect("127.0.0.1", port) for _ in range(4)]
        assert all(_echoes(c) for c in held)
        compile_config(f"{rule} [max-connections=2]\nlogfile LOG\n", tmp_path)
        fw.signal(signal.SIGHUP)
        fw.wait_for_stderr("reloaded:")
        over = _connect("127.0.0.1", port)
        over.settimeout(5)
        assert recv_all(over) == b""  # 4 open, the limit 2: refused
        fw.wait_for_log("limit-exceeded")
        for sock in held[:3]:
            sock.close()
        fw.log_lines(8)  # 4 opened, 1 refused, 3 done
        again = _connect("127.0.0.1", port)  # 1 open now: admitted
        assert _echoes(again)
        for sock in (held[3], over, again):
            sock.close()


def test_a_udp_rule_ignores_the_tcp_connection_limits(tmp_path: Path) -> None:
    echo = UdpEcho().start()
    port = free_port(socket.SOCK_DGRAM)
    limits = "[max-connections=1, max-connections-per-client=1]"
    conf = f"127.0.0.1 {port}/udp 127.0.0.1 {echo.port}/udp {limits}\nlogfile LOG\n"
    clients = []
    try:
        with running(conf, tmp_path) as fw:
            for number in range(6):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.settimeout(5)
                sock.bind(("127.0.0.1", 0))
                sock.sendto(b"%d" % number, ("127.0.0.1", port))
                assert sock.recv(16) == b"%d" % number  # all six answered, as W111 says
                clients.append(sock)
            assert "limit-exceeded" not in fw.log.read_text()
    finally:
        for sock in clients:
            sock.close()
        echo.stop()


def test_workers_say_that_limits_count_per_worker(echo: TcpEcho, tmp_path: Path) -> None:
    port = free_port()
    conf = f"127.0.0.1 {port} 127.0.0.1 {echo.port} [max-connections=2]\n"
    fw = start_forwarder(compile_config(conf, tmp_path), workers=2)
    try:
        fw.wait_for_stderr("count in each worker, so up to 2 times a limit is admitted")
    finally:
        fw.stop()
