"""UDP sessions and the tcp<->udp mixes, through a real rinetd-run on loopback."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from tests.helpers import parse_tab
from tests.runtime.harness import (
    TcpEcho,
    UdpEcho,
    connect_from,
    free_port,
    recv_all,
    running,
)


def _udp_client(source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in source else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.settimeout(5)
    return sock


def test_udp_to_udp_echo_without_truncation(tmp_path: Path, udp_echo: UdpEcho) -> None:
    port = free_port(socket.SOCK_DGRAM)
    conf = f"127.0.0.1 {port}/udp 127.0.0.1 {udp_echo.port}/udp [timeout=1]\nlogfile LOG\n"
    with running(conf, tmp_path) as fw:
        client = _udp_client()
        for size in (1, 1500, 16 * 1024 + 1, 65507):
            payload = os.urandom(size)
            client.sendto(payload, ("127.0.0.1", port))
            answer, source = client.recvfrom(1 << 17)
            assert answer == payload
            assert source == ("127.0.0.1", port)
        client.close()
        lines = fw.log_lines(2, timeout=5)  # the session times out after 1 s idle
    assert udp_echo.received == [1, 1500, 16 * 1024 + 1, 65507]  # no empty datagram first
    opened, done = parse_tab(lines[0]), parse_tab(lines[1])
    total = str(1 + 1500 + 16 * 1024 + 1 + 65507)
    assert (opened["result"], done["result"]) == ("opened", "done-remote-closed")
    assert (done["bytes_in"], done["bytes_out"]) == (total, total)


def test_sessions_are_per_client_address_and_port(tmp_path: Path, udp_echo: UdpEcho) -> None:
    port = free_port(socket.SOCK_DGRAM)
    conf = f"127.0.0.1 {port}/udp 127.0.0.1 {udp_echo.port}/udp\nlogfile LOG\n"
    with running(conf, tmp_path) as fw:
        clients = [_udp_client("127.0.0.1"), _udp_client("127.0.0.1"), _udp_client("127.0.0.2")]
        for round_ in range(3):
            for number, client in enumerate(clients):
                message = f"{number}:{round_}".encode()
                client.sendto(message, ("127.0.0.1", port))
                assert client.recvfrom(100)[0] == message
        fw.log_lines(3)
        assert fw.stop() == 0  # every session ends and every line is written
        for client in clients:
            client.close()
        lines = fw.log.read_text().splitlines()
    opened = [parse_tab(line) for line in lines if line.endswith("\topened")]
    assert len(lines) == 2 * len(opened)  # each session opened once and ended once
    assert sorted(line["client"] for line in opened) == [
        "127.0.0.1",
        "127.0.0.1",
        "127.0.0.2",
    ]


def test_udp_over_ipv6(tmp_path: Path) -> None:
    echo = UdpEcho(host="::1").start()
    try:
        port = free_port(socket.SOCK_DGRAM, host="::1")
        with running(f"::1 {port}/udp ::1 {echo.port}/udp\n", tmp_path):
            client = _udp_client("::1")
            for message in (b"a", b"b", b"c"):
                client.sendto(message, ("::1", port))
                assert client.recvfrom(10)[0] == message
            client.close()
    finally:
        echo.stop()


def test_idle_timeout_is_refreshed_by_backend_traffic(tmp_path: Path) -> None:
    """A backend that keeps talking keeps the session alive past the timeout."""
    backend = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    backend.bind(("127.0.0.1", 0))
    backend.settimeout(5)
    port = free_port(socket.SOCK_DGRAM)
    target = backend.getsockname()[1]
    conf = f"127.0.0.1 {port}/udp 127.0.0.1 {target}/udp [timeout=1]\nlogfile LOG\n"
    with running(conf, tmp_path) as fw:
        client = _udp_client()
        client.sendto(b"hello", ("127.0.0.1", port))
        _data, session = backend.recvfrom(100)
        for _ in range(5):  # 2.5 s of backend-only traffic, beyond the 1 s timeout
            time.sleep(0.5)
            backend.sendto(b"tick", session)
            assert client.recvfrom(100)[0] == b"tick"
        assert len(fw.log_lines(1)) == 1  # still open
        lines = fw.log_lines(2, timeout=5)  # closes once everyone is quiet
        client.close()
    backend.close()
    assert parse_tab(lines[1])["bytes_out"] == str(5 * 4)


def test_udp_denied_clients_reach_nothing(tmp_path: Path, udp_echo: UdpEcho) -> None:
    port = free_port(socket.SOCK_DGRAM)
    conf = f"127.0.0.1 {port}/udp 127.0.0.1 {udp_echo.port}/udp\ndeny 127.0.0.3\nlogfile LOG\n"
    with running(conf, tmp_path) as fw:
        client = _udp_client("127.0.0.3")
        client.sendto(b"let me in", ("127.0.0.1", port))
        lines = fw.log_lines(1)
        client.close()
    assert udp_echo.received == []
    assert parse_tab(lines[0])["result"] == "denied"


def test_tcp_to_udp(tmp_path: Path, udp_echo: UdpEcho) -> None:
    port = free_port()
    with running(f"127.0.0.1 {port} 127.0.0.1 {udp_echo.port}/udp\nlogfile LOG\n", tmp_path) as fw:
        with connect_from("127.0.0.1", port) as sock:
            sock.sendall(b"over tcp")
            assert sock.recv(100) == b"over tcp"
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b""
        lines = fw.log_lines(2)
    assert udp_echo.received == [8]
    assert parse_tab(lines[1])["result"] == "done-remote-closed"


def test_udp_to_tcp(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    port = free_port(socket.SOCK_DGRAM)
    with running(f"127.0.0.1 {port}/udp 127.0.0.1 {tcp_echo.port}\n", tmp_path):
        client = _udp_client()
        client.sendto(b"over udp", ("127.0.0.1", port))
        assert client.recvfrom(100)[0] == b"over udp"
        client.close()
    assert tcp_echo.accepted == 1


def test_a_wildcard_and_a_specific_address_share_a_udp_port(
    tmp_path: Path, udp_echo: UdpEcho
) -> None:
    """As 0.73 does: both are bound, and the kernel gives each datagram to the most
    specific socket, so the specific rule serves its address and the wildcard the rest."""
    other = UdpEcho().start()
    port = free_port(socket.SOCK_DGRAM, "0.0.0.0")
    conf = (
        f"0 {port}/udp 127.0.0.1 {udp_echo.port}/udp\n"
        f"127.0.0.1 {port}/udp 127.0.0.1 {other.port}/udp\n"
        "logfile LOG\n"
    )
    try:
        with running(conf, tmp_path) as fw:
            for target in ("127.0.0.1", "127.0.0.2"):
                client = _udp_client()
                client.sendto(target.encode(), (target, port))
                assert client.recvfrom(100)[0] == target.encode()
                client.close()
            lines = [parse_tab(line) for line in fw.log_lines(2)]
    finally:
        other.stop()
    served = {(line["bind_host"], line["connect_port"]) for line in lines}
    assert served == {("127.0.0.1", str(other.port)), ("0", str(udp_echo.port))}
    assert (udp_echo.received, other.received) == ([len("127.0.0.2")], [len("127.0.0.1")])
