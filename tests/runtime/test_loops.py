"""``--loop uvloop``: the same forwarding on uvloop's event loop (installed by the test extras)."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from tests.helpers import parse_tab
from tests.runtime.harness import (
    TcpEcho,
    UdpEcho,
    connect_from,
    free_port,
    recv_all,
    running,
)

pytest.importorskip("uvloop")


def test_uvloop_forwards_tcp_bulk_short_connections_and_udp(
    tmp_path: Path, tcp_echo: TcpEcho, udp_echo: UdpEcho
) -> None:
    tcp, udp = free_port(), free_port(socket.SOCK_DGRAM)
    conf = (
        f"127.0.0.1 {tcp} 127.0.0.1 {tcp_echo.port}\n"
        f"127.0.0.1 {udp}/udp 127.0.0.1 {udp_echo.port}/udp\n"
        "logfile LOG\n"
    )
    with running(conf, tmp_path, "--loop", "uvloop") as fw:
        payload = os.urandom(8 * 1024 * 1024)  # bulk: spliced after the first large read
        with connect_from("127.0.0.1", tcp) as sock:
            sock.sendall(payload[: 1 << 20])
            sent = 1 << 20
            received = bytearray()
            while len(received) < len(payload):
                if sent < len(payload):
                    sock.sendall(payload[sent : sent + (1 << 20)])
                    sent += 1 << 20
                    if sent == len(payload):
                        sock.shutdown(socket.SHUT_WR)
                received += sock.recv(1 << 20)
            assert recv_all(sock) == b""
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
        for number in range(20):
            with connect_from("127.0.0.1", tcp) as sock:
                sock.sendall(b"short %d" % number)
                sock.shutdown(socket.SHUT_WR)
                assert recv_all(sock) == b"short %d" % number
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(5)
        client.sendto(b"datagram", ("127.0.0.1", udp))
        assert client.recvfrom(100)[0] == b"datagram"
        client.close()
        lines = [parse_tab(line) for line in fw.log_lines(43)]
    bulk = next(line for line in lines if line["result"] != "opened")
    assert (bulk["bytes_in"], bulk["bytes_out"]) == (str(len(payload)),) * 2
    assert [line["result"] for line in lines].count("done-remote-closed") == 21
