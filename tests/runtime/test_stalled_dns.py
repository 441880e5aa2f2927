"""A resolver that never answers, seen by rinetd-run in a mount namespace of its own
(its /etc/hosts and /etc/resolv.conf bound over the host's, which stay untouched):
reloads and stops never wait for the lookups under way."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import BIN, compile_config
from tests.runtime.harness import Forwarder, TcpEcho, echo_once, free_ports, threads

NAMES = 24
SILENT = "127.0.0.77"  # a name server that takes queries and answers none
POOL_SILENT = "127.0.0.79"  # another, for a test that may run beside the first


def _needs_root() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("root and unshare are needed in CI")
        pytest.skip("needs root (a mount namespace)")


def _with_own_resolver(compiled: Path, hosts: Path, resolv: Path) -> list[str]:
    """The command running rinetd-run in a mount namespace of its own, ``hosts`` and
    ``resolv`` bound over its /etc/hosts and /etc/resolv.conf (the host's stay
    untouched)."""
    script = (
        f'mount --bind "{hosts}" /etc/hosts && mount --bind "{resolv}" /etc/resolv.conf '
        f'&& exec "{BIN / "rinetd-run"}" "{compiled}" --grace 1'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def _forwarder_with_own_resolver(compiled: Path, hosts: Path, resolv: Path) -> Forwarder:
    command = _with_own_resolver(compiled, hosts, resolv)
    forwarder = Forwarder(subprocess.Popen(command, stderr=subprocess.PIPE), hosts.parent, compiled)
    forwarder.wait_for_stderr("rinetd-run: forwarding")
    return forwarder


def test_reload_and_stop_do_not_wait_for_a_silent_resolver(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    _needs_root()
    hosts, resolv = tmp_path / "hosts", tmp_path / "resolv.conf"
    names = [f"backend{n}.rinetd-test.example" for n in range(NAMES)]
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {n}\n" for n in names))
    resolv.write_text(f"nameserver {SILENT}\noptions timeout:5 attempts:2\n")
    ports = free_ports(NAMES)
    rules = "".join(
        f"127.0.0.1 {port} {name} {tcp_echo.port} [dns-refresh=1]\n"
        for port, name in zip(ports, names, strict=True)
    )
    compiled = compile_config(rules, tmp_path, "--no-resolve")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((SILENT, 53))  # queries arrive and are never answered
        process = subprocess.Popen(
            _with_own_resolver(compiled, hosts, resolv), stderr=subprocess.PIPE, text=True
        )
        try:
            assert process.stderr is not None
            assert "forwarding" in process.stderr.readline()
            hosts.write_text("127.0.0.1 localhost\n")  # the names now go to the silent server
            time.sleep(2.5)  # every name's refresh is waiting on it
            numeric = compile_config(f"127.0.0.1 {ports[0]} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
            assert numeric == compiled
            started = time.monotonic()
            process.send_signal(signal.SIGHUP)
            while "reloaded" not in (line := process.stderr.readline()):
                assert line, "rinetd-run ended"
            assert time.monotonic() - started < 5, "the reload waited for the lookups"
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
            assert time.monotonic() - started < 5, "the stop waited for the lookups"
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_pool_member_s_silent_name_server_holds_one_lookup_not_one_a_check(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    """A member whose name did not resolve is looked up again before each check; when the
    name server stops answering, the checks (one a second, each giving up after a
    second) share the one lookup under way instead of starting a thread each."""
    _needs_root()
    hosts, resolv = tmp_path / "hosts", tmp_path / "resolv.conf"
    hosts.write_text("127.0.0.1 localhost\n")
    # At start a name server that refuses at once (nothing listens there): the name
    # does not resolve, quickly.
    resolv.write_text("nameserver 127.0.0.78\noptions timeout:5 attempts:2\n")
    port = free_ports(1)[0]
    text = (
        f"pool web lost.rinetd-test.example {tcp_echo.port}\n"
        f"pool web 127.0.0.1 {tcp_echo.port}\n"
        f"127.0.0.1 {port} @web [health-interval=1, health-timeout=1]\n"
    )
    compiled = compile_config(text, tmp_path, "--no-resolve")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((POOL_SILENT, 53))
        forwarder = _forwarder_with_own_resolver(compiled, hosts, resolv)
        try:
            forwarder.wait_for_stderr("lost.rinetd-test.example does not resolve")
            pid = forwarder.process.pid
            before = threads(pid)  # rinetd-run's and its health checker's
            resolv.write_text(f"nameserver {POOL_SILENT}\noptions timeout:5 attempts:2\n")
            # Three checks (a second's wait, a second's sleep), each given up; a lookup
            # of the silent server takes ten.
            time.sleep(6.5)
            after = threads(pid)
            assert echo_once(port) == b"ping"  # still forwarding
        finally:
            forwarder.stop()
    assert after - before <= 1, (before, after)  # the one lookup under way


def test_a_member_whose_name_does_not_resolve_is_down_not_a_failed_start(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    """One member's name does not resolve: the other serves, and it is said down; a pool
    none of whose members resolves fails to load, as a rule's host would.  (A resolver
    of its own that refuses at once: no query leaves the machine.)"""
    _needs_root()
    hosts, resolv = tmp_path / "hosts", tmp_path / "resolv.conf"
    hosts.write_text("127.0.0.1 localhost\n")
    resolv.write_text("nameserver 127.0.0.78\n")  # nothing listens: refused at once
    port, unknown = free_ports(1)[0], "no-such-member.rinetd-test.example"
    text = f"pool web {unknown} 80\npool web 127.0.0.1 {tcp_echo.port}\n127.0.0.1 {port} @web\n"
    compiled = compile_config(text, tmp_path, "--no-resolve")
    forwarder = _forwarder_with_own_resolver(compiled, hosts, resolv)
    try:
        forwarder.wait_for_stderr(
            f"pool web member {unknown} 80 is down: {unknown} does not resolve"
        )
        for _ in range(5):
            assert echo_once(port) == b"ping"
    finally:
        forwarder.stop()
    lone = f"pool web {unknown} 80\n127.0.0.1 {port} @web\n"
    command = _with_own_resolver(compile_config(lone, tmp_path, "--no-resolve"), hosts, resolv)
    failed = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert failed.returncode == 2  # a rule set refused, as for a rule's host
    assert f'pool member of line 1: cannot resolve host "{unknown}"' in failed.stderr
