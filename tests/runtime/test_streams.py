"""`logfile -` and stderr on pipes that nobody reads, or read slowly: forwarding, reloads
and stopping never wait for the reader, and no line is split, with `--workers` too."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import BIN, compile_config
from tests.runtime.harness import TcpEcho, free_port, wait_for_tcp


def _echo_through(port: int, count: int) -> None:
    for n in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            payload = b"%d" % n
            client.sendall(payload)
            assert client.recv(64) == payload


def _stops(process: subprocess.Popen[bytes], within: float) -> bool:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
    return True


@contextlib.contextmanager
def _unread_pipe(rules: Path, *, stderr_too: bool) -> Iterator[subprocess.Popen[bytes]]:
    """rinetd-run with stdout (and stderr, or else a pipe of ours) on a pipe nobody
    reads; killed and the pipe closed whatever happens."""
    read_end, write_end = os.pipe()
    stderr = write_end if stderr_too else subprocess.PIPE
    process = subprocess.Popen(
        [str(BIN / "rinetd-run"), str(rules)], stdout=write_end, stderr=stderr
    )
    os.close(write_end)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(read_end)


def test_a_full_pipe_on_stdout_and_stderr_stops_nothing(tcp_echo: TcpEcho, tmp_path: Path) -> None:
    port = free_port()
    rules = compile_config(f"logfile -\n127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
    with _unread_pipe(rules, stderr_too=True) as process:  # nobody reads it
        wait_for_tcp("127.0.0.1", port)
        _echo_through(port, 1200)  # ~100 KiB of log lines: the 64 KiB pipe is full
        for _ in range(20):  # each reload says two lines on the full stderr
            process.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        _echo_through(port, 50)  # still forwarding
        assert _stops(process, within=10), "SIGTERM did not stop rinetd-run"


def test_a_stalled_stdout_alone_does_not_hold_the_exit(tcp_echo: TcpEcho, tmp_path: Path) -> None:
    port = free_port()
    rules = compile_config(f"logfile -\n127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
    with _unread_pipe(rules, stderr_too=False) as process:
        assert process.stderr is not None
        assert b"forwarding" in process.stderr.readline()
        _echo_through(port, 1200)
        threading.Thread(target=process.stderr.read, daemon=True).start()
        assert _stops(process, within=10), "SIGTERM did not stop rinetd-run"


def test_workers_on_one_slow_pipe_never_split_a_json_line(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    port = free_port()
    rules = compile_config(
        f"logjson\nlogfile -\n127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path
    )
    process = subprocess.Popen(
        [str(BIN / "rinetd-run"), str(rules), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    received: list[bytes] = []

    def slow_reader() -> None:
        assert process.stdout is not None
        while chunk := process.stdout.read1(512):
            received.append(chunk)
            time.sleep(0.002)

    reader = threading.Thread(target=slow_reader, daemon=True)
    reader.start()
    try:
        wait_for_tcp("127.0.0.1", port)
        clients = [threading.Thread(target=_echo_through, args=(port, 500)) for _ in range(4)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        assert _stops(process, within=15)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = b"".join(received).decode().splitlines()
    assert len(lines) > 500  # most of the ~4,000 lines, whatever the reader missed
    entries = [json.loads(line) for line in lines]  # a split line does not parse
    assert {e["result"] for e in entries} <= {"opened", "done-local-closed", "done-remote-closed"}
