"""`--workers`: a reload applies in every worker or in none, and a metrics port that a
worker could not serve is refused at start with a clear line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from tests.helpers import BIN, compile_config
from tests.runtime.harness import TcpEcho, free_port, recv_all, start_forwarder


def _two_in_a_row() -> int:
    """A free port whose next port is free too."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


def _forwarded(port: int, count: int) -> int:
    served = 0
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            try:
                client.sendall(b"x")
                client.shutdown(socket.SHUT_WR)
                served += recv_all(client) == b"x"
            except OSError:
                pass  # denied: closed at once, perhaps before the shutdown
    return served


def test_a_reload_one_worker_cannot_apply_is_applied_by_none(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    tcp, metrics, moved = free_port(), _two_in_a_row(), _two_in_a_row()
    rule = f"127.0.0.1 {tcp} 127.0.0.1 {tcp_echo.port}\n"
    fw = start_forwarder(
        compile_config(f"metrics 127.0.0.1 {metrics}\n{rule}", tmp_path), workers=2
    )
    try:
        assert _forwarded(tcp, 10) == 10
        with socket.socket() as busy:  # worker 1 cannot serve metrics on moved + 1
            busy.bind(("127.0.0.1", moved + 1))
            busy.listen()
            compile_config(f"deny 127.0.0.1\nmetrics 127.0.0.1 {moved}\n{rule}", tmp_path)
            fw.signal(signal.SIGHUP)
            fw.wait_for_stderr("reload failed", count=2)
            assert sum("another worker could not apply it" in line for line in fw.errors) == 1
            assert _forwarded(tcp, 40) == 40  # no worker denies: both kept the old rules
        fw.signal(signal.SIGHUP)  # the port is free now: both take it
        fw.wait_for_stderr("reloaded", count=2)
        assert _forwarded(tcp, 40) == 0
    finally:
        fw.stop()


def test_a_signal_to_a_worker_alone_reloads_nothing(tcp_echo: TcpEcho, tmp_path: Path) -> None:
    tcp = free_port()
    rule = f"127.0.0.1 {tcp} 127.0.0.1 {tcp_echo.port}\n"
    fw = start_forwarder(compile_config(rule, tmp_path), workers=2)
    try:
        worker = int(
            subprocess.run(
                ["pgrep", "-P", str(fw.process.pid)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        compile_config("deny 127.0.0.1\n" + rule, tmp_path)
        os.kill(worker, signal.SIGHUP)
        fw.wait_for_stderr("SIGHUP to a worker does nothing: send it to the parent")
        assert _forwarded(tcp, 20) == 20
    finally:
        fw.stop()


def test_metrics_ports_of_workers_that_a_rule_binds_are_refused_at_start(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    metrics = _two_in_a_row()
    conf = f"metrics 127.0.0.1 {metrics}\n127.0.0.1 {metrics + 1} 127.0.0.1 {tcp_echo.port}\n"
    done = subprocess.run(
        [str(BIN / "rinetd-run"), str(compile_config(conf, tmp_path)), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert f"worker 1 would serve metrics on 127.0.0.1 {metrics + 1}" in done.stderr
    assert "rule of line 2" in done.stderr
