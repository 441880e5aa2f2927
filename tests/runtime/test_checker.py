"""The health checker runs in a process of its own: started only when a pool has active
checks, started again when it dies, gone when rinetd-run stops, is killed, or no longer
has members to check."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import BIN, compile_config, wait_until
from tests.runtime.harness import (
    Forwarder,
    TcpEcho,
    alive,
    children,
    echo_once,
    free_port,
    running,
    start_forwarder,
)


@pytest.fixture
def members() -> Iterator[list[TcpEcho]]:
    servers = [TcpEcho(host=f"127.0.1.{n}").start() for n in (4, 5)]
    yield servers
    for server in servers:
        server.stop()


def _text(members: list[TcpEcho], port: int, interval: int = 1) -> str:
    pool = "".join(f"pool web {m.host} {m.port}\n" for m in members)
    options = f"health-interval={interval}, health-fall=1, health-rise=1"
    return f"{pool}127.0.0.1 {port} @web [{options}]\n"


def _command(pid: int) -> bytes:
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    return b""


def _checker(pid: int) -> int:
    """The one process rinetd-run ``pid`` has started: its health checker, once it runs
    (a child just forked still shows rinetd-run's own command line until its exec)."""

    def started() -> list[int]:
        found = children(pid)
        checkers = [child for child in found if b"rinetd_run.checker" in _command(child)]
        return found if checkers == found else []

    found = wait_until(started, "a health checker process and nothing else")
    assert len(found) == 1, [_command(child) for child in found]
    return found[0]


def _ignores(pid: int, number: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(ignored.split()[1], 16) & (1 << (number - 1)))


def _sockets(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a check's socket, closed meanwhile
            found.add(os.readlink(fd))
    return {link for link in found if link.startswith("socket:")}


def _gone(pid: int) -> None:
    wait_until(lambda: not alive(pid), f"process {pid} to end")


def test_a_killed_checker_is_started_again_and_its_checks_go_on(
    members: list[TcpEcho], tmp_path: Path
) -> None:
    port = free_port()
    with running(_text(members, port), tmp_path) as forwarder:
        first = _checker(forwarder.process.pid)
        os.kill(first, signal.SIGKILL)
        forwarder.wait_for_stderr("the health checker was killed by signal 9")
        second = _checker(forwarder.process.pid)
        assert second != first
        # The new checker's checks are counted: a member that stops answering goes down.
        members[1].stop()
        forwarder.wait_for_stderr(f"member {members[1].host} {members[1].port} is down")
        assert forwarder.process.poll() is None


def test_a_forwarder_that_stops_or_is_killed_leaves_no_checker(
    members: list[TcpEcho], tmp_path: Path
) -> None:
    port = free_port()
    compiled = compile_config(_text(members, port), tmp_path)
    stopped = start_forwarder(compiled)
    try:
        checker = _checker(stopped.process.pid)
        # As systemd stops a unit: SIGTERM to each of its processes (rinetd-run's then
        # lets its connections finish).  The checker leaves when rinetd-run lets it go,
        # not first (to be started again).
        wait_until(lambda: _ignores(checker, signal.SIGTERM), "the checker to be under way")
        os.kill(checker, signal.SIGTERM)
        time.sleep(0.5)
        assert alive(checker)
    finally:
        assert stopped.stop() == 0
    _gone(checker)
    assert not any("health checker" in line for line in stopped.errors), stopped.errors
    killed = start_forwarder(compiled)
    try:
        checker = _checker(killed.process.pid)
        # It holds none of rinetd-run's sockets (a listening one would keep the port
        # from the next rinetd-run).
        assert not _sockets(checker) & _sockets(killed.process.pid)
        assert _sockets(killed.process.pid)
        killed.process.kill()
        killed.process.wait()
        _gone(checker)  # its stdin ended with rinetd-run
    finally:
        killed.stop()


def test_no_checker_without_active_checks_and_reloads_start_and_stop_it(
    members: list[TcpEcho], tmp_path: Path
) -> None:
    port = free_port()
    passive = _text(members, port, interval=0)
    with running(passive, tmp_path) as forwarder:
        time.sleep(0.5)
        assert children(forwarder.process.pid) == []
        compile_config(_text(members, port), tmp_path)
        forwarder.signal(signal.SIGHUP)
        forwarder.wait_for_reload()
        checker = _checker(forwarder.process.pid)
        compile_config(passive, tmp_path)
        forwarder.signal(signal.SIGHUP)
        forwarder.wait_for_reload(count=2)
        _gone(checker)
        assert children(forwarder.process.pid) == []
        assert not any("health checker" in line for line in forwarder.errors), forwarder.errors


def test_a_checker_that_cannot_start_is_said_and_tried_again_later_while_forwarding_goes_on(
    members: list[TcpEcho], tmp_path: Path
) -> None:
    """A broken install (the interpreter rinetd-run was started with is gone): each
    attempt is said, the next one waits twice as long, the rule forwards all the same,
    and once the interpreter is back a checker runs again."""
    port = free_port()
    compiled = compile_config(_text(members, port), tmp_path)
    bundle = tmp_path / "rinetd-run.pyz"
    done = subprocess.run([str(BIN / "rinetdc"), "bundle", "-o", str(bundle)], check=False)
    assert done.returncode == 0
    interpreter = tmp_path / "bin" / "python3"
    interpreter.parent.mkdir()
    interpreter.symlink_to(os.path.realpath(sys.executable))
    process = subprocess.Popen(
        [str(interpreter), str(bundle), str(compiled)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    forwarder = Forwarder(process, tmp_path, compiled)
    try:
        forwarder.wait_for_stderr("rinetd-run: forwarding")
        checker = _checker(process.pid)
        interpreter.unlink()
        os.kill(checker, signal.SIGKILL)
        forwarder.wait_for_stderr("the health checker was killed by signal 9; starting another")
        forwarder.wait_for_stderr("the health checker could not start (")
        said = [line for line in forwarder.errors if "health checker" in line]
        assert said[-1].endswith("starting another (after 2 s)"), said
        assert echo_once(port) == b"ping"
        interpreter.symlink_to(os.path.realpath(sys.executable))
        _checker(process.pid)  # within the next wait (4 s)
        assert forwarder.process.poll() is None
    finally:
        forwarder.stop()
