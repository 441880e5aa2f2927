"""`logjson` and `logfile -` on loopback: one JSON object a line for every result word a
test can bring about, and log lines on standard output."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import BIN, compile_config
from tests.runtime.harness import TcpEcho, connect_from, free_port, recv_all, running

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
FIELDS = {
    "time", "client", "client_port", "bind", "bind_port", "connect", "connect_port",
    "bytes_from_client", "bytes_to_client", "result", "line",
}  # fmt: skip


def _entries(log: Path, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)
    raise AssertionError(f"expected {count} lines: {log.read_text()}")


def test_every_result_word_as_a_json_line(tcp_echo: TcpEcho, tmp_path: Path) -> None:
    ports = [free_port() for _ in range(4)]
    dead = free_port()  # nothing listens: the backend refuses
    conf = (
        "logjson\nlogfile LOG\n"
        f"127.0.0.1 {ports[0]} 127.0.0.1 {tcp_echo.port} [max-connections=1]\n"
        f"127.0.0.1 {ports[1]} 127.0.0.1 {dead}\n"
        f"127.0.0.1 {ports[2]} 127.0.0.1 {tcp_echo.port} [idle-timeout=1]\n"
        f"127.0.0.1 {ports[3]} 127.0.0.1 {tcp_echo.port}\n"
        "allow 127.0.0.2\n"
        "deny 127.0.0.3\n"
    )
    with running(conf, tmp_path) as fw:
        served = connect_from("127.0.0.1", ports[0])
        served_port = served.getsockname()[1]
        served.sendall(b"abc")
        assert served.recv(3) == b"abc"
        over = connect_from("127.0.0.1", ports[0])  # limit-exceeded
        assert recv_all(over) == b""
        served.close()  # done-remote-closed
        refused = connect_from("127.0.0.1", ports[1])  # opened, done-local-closed
        assert recv_all(refused) == b""
        idle = connect_from("127.0.0.1", ports[2])  # opened, done-idle-timeout
        assert recv_all(idle) == b""
        denied = connect_from("127.0.0.3", ports[3])  # not-allowed: 127.0.0.3 is no 127.0.0.2
        assert recv_all(denied) == b""
        entries = _entries(fw.log, 8)
        for sock in (over, refused, idle, denied):
            sock.close()
    for entry in entries:
        assert set(entry) == FIELDS
        assert RFC3339.fullmatch(str(entry["time"]))
    words = [e["result"] for e in entries]
    for word in ("opened", "limit-exceeded", "done-remote-closed", "done-local-closed",
                 "done-idle-timeout", "not-allowed"):  # fmt: skip
        assert word in words, words
    first = entries[0]
    assert first["client_port"] == served_port
    assert first["bind_port"] == ports[0] and first["connect_port"] == tcp_echo.port
    assert first["line"] == 3 and first["client"] == "127.0.0.1"
    closed = next(e for e in entries if e["result"] == "done-remote-closed")
    assert (closed["bytes_from_client"], closed["bytes_to_client"]) == (3, 3)


def test_a_denied_client_is_a_json_line_too(tcp_echo: TcpEcho, tmp_path: Path) -> None:
    port = free_port()
    conf = f"logjson\nlogfile LOG\n127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\ndeny 127.0.0.5\n"
    with running(conf, tmp_path) as fw:
        client = connect_from("127.0.0.5", port)
        own_port = client.getsockname()[1]
        assert recv_all(client) == b""
        client.close()
        (entry,) = _entries(fw.log, 1)
    assert entry["result"] == "denied" and entry["client_port"] == own_port


def test_logfile_dash_writes_the_lines_to_standard_output(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    port = free_port()
    rules = compile_config(f"logfile -\n127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
    process = subprocess.Popen(
        [str(BIN / "rinetd-run"), str(rules)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        assert b"forwarding" in process.stderr.readline()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"x")
            assert client.recv(1) == b"x"
        first = process.stdout.readline().decode()
        assert first.split("\t")[1:2] == ["127.0.0.1"] and first.endswith("\topened\n")
    finally:
        process.terminate()
        process.wait(timeout=15)
