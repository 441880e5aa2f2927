"""Every result word, in both log formats, parsed field by field."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.helpers import parse_common, parse_tab
from tests.runtime.harness import (
    TcpEcho,
    connect_from,
    free_port,
    recv_all,
    running,
)


def _attempt(source: str, port: int) -> None:
    with connect_from(source, port) as sock:
        try:
            sock.sendall(b"abc")
            sock.shutdown(socket.SHUT_WR)
            recv_all(sock)
        except OSError:
            pass


@pytest.mark.parametrize("common", [False, True], ids=["tab", "common"])
def test_every_word_in_both_formats(tmp_path: Path, tcp_echo: TcpEcho, common: bool) -> None:
    ok, guarded, dead, unroutable = free_port(), free_port(), free_port(), free_port()
    nothing = free_port()
    conf = (
        f"127.0.0.1 {ok} 127.0.0.1 {tcp_echo.port}\n"
        f"127.0.0.1 {guarded} localhost {tcp_echo.port}\n"
        "allow 127.0.0.*\n"
        "deny 127.0.0.9\n"
        f"127.0.0.1 {dead} 127.0.0.1 {nothing}\n"
        f"127.0.0.1 {unroutable} 127.0.0.1 {tcp_echo.port} [src=192.0.2.7]\n"
        "logfile LOG\n" + ("logcommon\n" if common else "")
    )
    with running(conf, tmp_path) as fw:
        _attempt("127.0.0.1", ok)  # opened, done-remote-closed
        _attempt("127.1.1.1", guarded)  # not-allowed
        _attempt("127.0.0.9", guarded)  # denied
        _attempt("127.0.0.1", dead)  # opened, done-local-closed
        _attempt("127.0.0.1", unroutable)  # opened, local-connect-failed -
        lines = fw.log_lines(8)
    parse = parse_common if common else parse_tab
    found = [parse(line) for line in lines]
    fields = [
        (f["client"], f["bind_host"], f["bind_port"], f["connect_host"], f["connect_port"],
         f["bytes_in"], f["bytes_out"], f["result"])
        for f in found
    ]  # fmt: skip
    echo = str(tcp_echo.port)
    assert fields[:4] == [
        ("127.0.0.1", "127.0.0.1", str(ok), "127.0.0.1", echo, "0", "0", "opened"),
        ("127.0.0.1", "127.0.0.1", str(ok), "127.0.0.1", echo, "3", "3", "done-remote-closed"),
        ("127.1.1.1", "127.0.0.1", str(guarded), "localhost", echo, "0", "0", "not-allowed"),
        ("127.0.0.9", "127.0.0.1", str(guarded), "localhost", echo, "0", "0", "denied"),
    ]
    assert [f[7] for f in fields[4:]] == [
        "opened",
        "done-local-closed",
        "opened",
        "local-connect-failed -",
    ]
    assert all(f[6] == "0" for f in fields[4:])  # nothing ever came back
    if common:  # the local offset, as strftime computes it on its own
        assert {f["zone"] for f in found} == {time.strftime("%z", time.localtime())}
