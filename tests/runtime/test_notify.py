"""``Type=notify``: rinetd-run tells the socket named by ``$NOTIFY_SOCKET`` READY=1 once
it forwards (with ``--workers``, once every worker does), STATUS= with how each reload
ended, and STOPPING=1; a start that fails says no READY=1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import BIN, compile_config
from tests.runtime.harness import TcpEcho, free_port, wait_for_tcp


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A stand-in for systemd's notification socket, and the environment naming it."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        yield sock, {**os.environ, "NOTIFY_SOCKET": str(path)}


def _start(rules: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "rinetd-run"), str(rules), "--grace", "1", *extra],
        env=env,
        stderr=subprocess.PIPE,
    )


def _messages(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


@pytest.mark.parametrize("workers", [1, 2])
def test_ready_once_forwarding_the_outcome_of_each_reload_and_stopping(
    tcp_echo: TcpEcho,
    tmp_path: Path,
    systemd: tuple[socket.socket, dict[str, str]],
    workers: int,
) -> None:
    sock, env = systemd
    port = free_port()
    rules = compile_config(f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
    process = _start(rules, env, "--workers", str(workers))
    try:
        ready = _messages(sock)
        assert ready[0] == "READY=1"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # every worker has its listener open by READY=1
        process.send_signal(signal.SIGHUP)
        status = _messages(sock)
        assert len(status) == 1 and status[0].startswith("STATUS=reloaded: "), status
        process.send_signal(signal.SIGTERM)
        assert _messages(sock) == ["STOPPING=1"]
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()


def test_a_start_that_fails_says_no_ready(
    tcp_echo: TcpEcho, tmp_path: Path, systemd: tuple[socket.socket, dict[str, str]]
) -> None:
    sock, env = systemd
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rules = compile_config(f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
        process = _start(rules, env)
        _, errors = process.communicate(timeout=20)
    assert process.returncode == 1 and b"cannot bind" in errors
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


def test_without_notify_socket_nothing_is_sent_and_a_bad_one_changes_nothing(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    port = free_port()
    rules = compile_config(f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}
    process = _start(rules, env)
    try:
        wait_for_tcp("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"x")
            assert client.recv(1) == b"x"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert process.stderr is not None
        process.stderr.close()
