"""rinetd-run under mistakes and attacks: hostile rule set files, signals while starting,
SIGHUP storms.  Every case ends with one line on stderr and the old rules still serving,
or a clean exit; never a traceback, a hang, or a port bound twice."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rinetd_run.canonical import dumps
from tests.helpers import BIN, compile_config
from tests.runtime.harness import (
    Forwarder,
    TcpEcho,
    UdpEcho,
    echo_once,
    free_port,
    free_ports,
    start_forwarder,
)


def _resealed(path: Path, change: Callable[[dict[str, object]], None]) -> str:
    document = json.loads(path.read_text())
    document.pop("digest")
    change(document)
    return dumps(document)


def _set_timeout_to_infinity(document: dict[str, object]) -> None:
    rules = document["rules"]
    assert isinstance(rules, list)
    rules[0]["timeout"] = float("inf")  # written as 1e400 below, sealed as it reads back


_LOG_PATH_SEVEN = {
    "file": {"path": 7, "line": 1, "file": 0},
    "format": "tab",
    "format_line": None,
    "format_file": None,
}


_CASES: dict[str, Callable[[Path], str | None]] = {
    "unknown key": lambda p: _resealed(p, lambda d: d.update(surprise=True)),
    "nested deep": lambda p: "[" * 100_000 + "]" * 100_000,
    "1e400": lambda p: _resealed(p, _set_timeout_to_infinity).replace("Infinity", "1e400"),
    "log path as a number": lambda p: _resealed(p, lambda d: d.update(log=_LOG_PATH_SEVEN)),
    "fifo": lambda p: None,
    "too large": lambda p: None,
}


_SAYS = {
    "unknown key": "unknown key 'surprise'",
    "nested deep": "nested too deep",
    "1e400": "rules[0].timeout must be an integer",
    "log path as a number": "log.file.path is not a valid value",
    "fifo": "is not a regular file",
    "too large": "is larger than 256 MiB",
}


def _make_bad(kind: str, good: Path, target: Path) -> None:
    """Put the hostile rule set of ``kind`` at ``target`` (replacing what is there)."""
    staged = target.with_name("staged")
    if kind == "fifo":
        os.mkfifo(staged)
    elif kind == "too large":
        with open(staged, "wb") as handle:
            handle.truncate(300 * 1024 * 1024)  # sparse: no disk is used
    else:
        text = _CASES[kind](good)
        assert text is not None
        staged.write_text(text)
    os.replace(staged, target)


def _one_line(errors: list[str], about: str) -> None:
    assert not any("Traceback" in line for line in errors), errors
    assert any(about in line for line in errors), errors


@pytest.mark.parametrize("kind", list(_CASES))
def test_a_hostile_rule_set_at_start_is_exit_2(tmp_path: Path, kind: str) -> None:
    good = compile_config(f"127.0.0.1 {free_port()} 127.0.0.1 9\n", tmp_path)
    bad = tmp_path / "bad.json"
    _make_bad(kind, good, bad)
    done = subprocess.run(
        [str(BIN / "rinetd-run"), str(bad)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert _SAYS[kind] in done.stderr


@pytest.mark.parametrize("kind", list(_CASES))
def test_a_hostile_rule_set_on_sighup_keeps_the_old_rules(
    tmp_path: Path, tcp_echo: TcpEcho, kind: str
) -> None:
    port = free_port()
    rules = compile_config(f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
    good = tmp_path / "good.json"
    good.write_bytes(rules.read_bytes())
    fw = start_forwarder(rules)
    try:
        _make_bad(kind, good, rules)
        fw.signal(signal.SIGHUP)
        fw.wait_for_stderr("reload failed, keeping the old rules")
        _one_line(fw.errors, _SAYS[kind])
        assert echo_once(port, b"hi") == b"hi"  # forwarding never stopped
        os.replace(good, rules)
        fw.signal(signal.SIGHUP)
        fw.wait_for_stderr("reloaded: forwarding 1 rules")
        assert echo_once(port, b"hi") == b"hi"
    finally:
        assert fw.stop() == 0


def _blocked(pid: int, number: int) -> bool:
    """Whether the process holds signal ``number`` back (its SigBlk mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) >> (number - 1) & 1)
    return False


def _starting(tmp_path: Path, count: int) -> tuple[Forwarder, list[int]]:
    """A forwarder with ``count`` rules (slow to bind), caught once its main has begun."""
    ports = free_ports(count)
    conf = "".join(f"127.0.0.1 {port} 127.0.0.1 9\n" for port in ports)
    fw = start_forwarder(compile_config(conf, tmp_path), ready=False)
    deadline = time.monotonic() + 10
    try:
        while not _blocked(fw.process.pid, signal.SIGHUP):
            assert time.monotonic() < deadline and fw.process.poll() is None
            time.sleep(0.001)
    except BaseException:
        fw.stop()
        raise
    return fw, ports


def test_sighup_while_starting_is_a_reload_once_ready(tmp_path: Path) -> None:
    fw, _ports = _starting(tmp_path, 2000)
    try:
        fw.signal(signal.SIGHUP)
        sent_before_ready = not any("forwarding" in line for line in fw.errors)
        fw.wait_for_stderr("rinetd-run: forwarding 2000 rules")
        fw.wait_for_stderr("reloaded: forwarding 2000 rules")
        assert fw.process.poll() is None
        assert sent_before_ready  # else this run proved nothing: the start was too quick
    finally:
        assert fw.stop() == 0


def test_sigterm_while_starting_is_a_clean_stop_once_ready(tmp_path: Path) -> None:
    fw, _ports = _starting(tmp_path, 2000)
    try:
        fw.signal(signal.SIGTERM)
        assert fw.process.wait(timeout=30) == 0
        assert not any("Traceback" in line for line in fw.errors)
    finally:
        fw.stop()


def _udp_ports_bound() -> set[int]:
    found = set()
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(name).read_text().splitlines()[1:]:
            found.add(int(line.split()[1].rsplit(":", 1)[1], 16))
    return found


def _swap(path: Path, data: bytes) -> None:
    staged = path.with_name("staged.json")
    staged.write_bytes(data)
    os.replace(staged, path)


def test_a_sighup_storm_leaves_exactly_the_wanted_listeners(tmp_path: Path) -> None:
    """Reloads never overlap: signals 1-10 ms apart while 1,000 UDP listeners are opened
    and closed, and in the end exactly the last file's ports are bound."""
    keep, *many = free_ports(1001, socket.SOCK_DGRAM)
    base = f"127.0.0.1 {keep}/udp 127.0.0.1 9/udp\n"
    with_many = base + "".join(f"127.0.0.1 {p}/udp 127.0.0.1 9/udp\n" for p in many)
    versions = []
    for name, text in (("base", base), ("many", with_many)):
        (tmp_path / name).mkdir()
        versions.append(compile_config(text, tmp_path / name).read_bytes())
    rules = tmp_path / "rules.json"
    rules.write_bytes(versions[0])
    fw = start_forwarder(rules)
    try:
        for number in range(40):
            _swap(rules, versions[1 - number % 2])
            fw.signal(signal.SIGHUP)
            time.sleep(0.001 + (number % 10) / 1000)
        _swap(rules, versions[0])  # the last word: only `keep`
        fw.signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while set(many) & _udp_ports_bound() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # any reload still queued has run by now
        bound = _udp_ports_bound()
        assert keep in bound
        assert not set(many) & bound, f"{len(set(many) & bound)} removed ports still bound"
        assert not any("Traceback" in line or "exception" in line for line in fw.errors)
    finally:
        assert fw.stop() == 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_udp_flood_never_starves_a_tcp_rule(
    tmp_path: Path, tcp_echo: TcpEcho, udp_echo: UdpEcho
) -> None:
    """3,000 datagrams from as many source ports to one UDP rule of a process allowed 256
    descriptors: the UDP rule ends its oldest sessions, and the TCP rule answers every
    request during the flood and after."""
    tcp_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    conf = (
        f"127.0.0.1 {tcp_port} 127.0.0.1 {tcp_echo.port}\n"
        f"127.0.0.1 {udp_port}/udp 127.0.0.1 {udp_echo.port}/udp\n"
        "logfile LOG\n"
    )
    fw = start_forwarder(compile_config(conf, tmp_path), max_files=256)
    stop = threading.Event()
    answers: list[bytes] = []

    def keep_asking() -> None:
        while not stop.is_set():
            try:
                answers.append(echo_once(tcp_port, b"hi"))
            except OSError as error:
                answers.append(repr(error).encode())

    asker = threading.Thread(target=keep_asking, daemon=True)
    asker.start()
    try:
        for _ in range(3000):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
                flood.bind(("127.0.0.1", 0))
                flood.sendto(b"x", ("127.0.0.1", udp_port))
        time.sleep(1)
        stop.set()
        asker.join(timeout=30)
        assert len(answers) > 20 and set(answers) == {b"hi"}, set(answers)
        assert echo_once(tcp_port, b"hi") == b"hi"  # and after
        said = [line for line in fw.errors if "file descriptors:" in line]
        assert len(said) == 1 and "UDP sessions end" in said[0]  # said once, not per event
        fw.wait_for_log("done-remote-closed")
        time.sleep(0.5)  # the last lines reach the file
        lines = fw.log.read_text().splitlines()
        opened = sum(line.endswith("\topened") for line in lines)
        ended = sum(line.endswith("\tdone-remote-closed") for line in lines)
        # However many datagrams the kernel let through, UDP never held more than its
        # half of the 256 descriptors: the rest were ended as others came.
        assert opened > 500 and opened - ended < 128, (opened, ended)
    finally:
        stop.set()
        fw.stop()


def test_a_udp_rule_holds_at_most_5000_sessions(tmp_path: Path, udp_echo: UdpEcho) -> None:
    port = free_port(socket.SOCK_DGRAM)
    conf = f"127.0.0.1 {port}/udp 127.0.0.1 {udp_echo.port}/udp\nlogfile LOG\n"
    fw = start_forwarder(compile_config(conf, tmp_path))
    try:
        opened = 0
        for number in range(6000):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
                flood.bind(("127.0.0.1", 0))
                flood.sendto(b"x", ("127.0.0.1", port))
            if number % 100 == 99:  # paced: each batch is taken in before the next
                deadline, before = time.monotonic() + 1, -1
                while opened != before and time.monotonic() < deadline:
                    before = opened
                    time.sleep(0.03)
                    opened = fw.log.read_text().count("\topened")
        assert fw.log.read_text().count("\topened") > 5000, "the kernel dropped too many"
        fw.wait_for_stderr("has 5000 sessions (max-udp-connections): each new one ends the least")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # every session beyond 5000 ends (72 s is far)
            lines = fw.log.read_text().splitlines()
            opened = sum("opened" in line for line in lines)
            ended = sum("done-remote-closed" in line for line in lines)
            if ended and opened - ended <= 5000:
                break
            time.sleep(0.1)
        assert ended and opened - ended <= 5000, (opened, ended)
        assert sum("has 5000 sessions" in line for line in fw.errors) == 1
    finally:
        fw.stop()


def test_the_descriptor_budget_leaves_tcp_clients_waiting_in_the_backlog(
    tmp_path: Path, tcp_echo: TcpEcho
) -> None:
    port = free_port()
    conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n"
    fw = start_forwarder(compile_config(conf, tmp_path), max_files=64)
    clients: list[socket.socket] = []
    try:
        for _ in range(40):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"hi")
            clients.append(sock)
        served, waiting = [], []
        for sock in clients:
            sock.settimeout(0.5)
            try:
                (served if sock.recv(10) == b"hi" else waiting).append(sock)
            except TimeoutError:
                waiting.append(sock)
        assert served and waiting, (len(served), len(waiting))
        fw.wait_for_stderr("TCP accepts pause")
        before = _cpu_seconds(fw.process.pid)
        time.sleep(1)
        assert _cpu_seconds(fw.process.pid) - before < 0.3, "spinning while the budget is spent"
        for sock in served:
            sock.close()
        for sock in waiting:  # they were kept in the backlog, not refused
            sock.settimeout(10)
            assert sock.recv(10) == b"hi"
            sock.close()  # its place goes to the next
        # Said when the budget was first spent, not once per refused accept.
        assert sum("file descriptors:" in line for line in fw.errors) <= 2
    finally:
        for sock in clients:
            sock.close()
        fw.stop()


def test_a_client_that_leaves_abandons_a_pending_connect(tmp_path: Path) -> None:
    """A backend whose accept queue is full leaves connects pending (SYN_SENT); a client
    that closes having sent nothing must not keep the forwarder's connect alive."""
    backend = socket.socket()
    backend.bind(("127.0.0.1", 0))
    backend.listen(0)
    backend_port = backend.getsockname()[1]
    fillers = [socket.create_connection(("127.0.0.1", backend_port), timeout=5)]
    port = free_port()
    conf = f"127.0.0.1 {port} 127.0.0.1 {backend_port}\nlogfile LOG\n"
    fw = start_forwarder(compile_config(conf, tmp_path))
    try:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                time.sleep(0.2)  # the forwarder's connect is under way
        lines = fw.wait_for_log("done-remote-closed")
        deadline = time.monotonic() + 5
        while sum("done" in line for line in lines) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
            lines = fw.log.read_text().splitlines()
        assert [line.split("\t")[-1] for line in lines].count("done-remote-closed") == 5
        assert _connecting_to(backend_port) == 0  # no SYN_SENT left behind
    finally:
        fw.stop()
        for sock in fillers:
            sock.close()
        backend.close()


def _connecting_to(port: int) -> int:
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(r.split()[2].endswith(f":{port:04X}") and r.split()[3] == "02" for r in rows)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small disk needs root")
def test_a_full_log_disk_loses_whole_lines_only_and_says_how_many(
    tmp_path: Path, tcp_echo: TcpEcho
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    fw = None
    try:
        port = free_port()
        log = disk / "rinetd.log"
        conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\nlogfile {log}\n"
        fw = start_forwarder(compile_config(conf, tmp_path))
        spare = disk / "spare"
        with open(disk / "filler", "wb", buffering=0) as filler:  # full but for one page
            spare.write_bytes(b"x" * 4096)
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"x" * 4096)
        spare.unlink()
        for _ in range(200):  # ~18 KiB of lines for a 4 KiB page: a write stops mid-line
            assert echo_once(port, b"hi") == b"hi"
        fw.wait_for_stderr("cannot write the log: No space left on device")
        (disk / "filler").unlink()
        time.sleep(0.3)
        for _ in range(5):
            assert echo_once(port, b"hi") == b"hi"
        fw.wait_for_stderr("log writable again:")
        (said,) = [line for line in fw.errors if "log writable again" in line]
        dropped = int(said.split(": ")[2].split()[0])
        deadline = time.monotonic() + 10
        while log.read_text().count("\n") + dropped < 2 * 205 and time.monotonic() < deadline:
            time.sleep(0.05)  # the last lines come in their own batch
        lines = log.read_text().split("\n")
        assert lines[-1] == ""  # ends with a whole line
        assert all(len(line.split("\t")) == 9 for line in lines[:-1]), "a partial line"
        assert len(lines) - 1 + dropped == 2 * 205 and dropped > 0
        assert sum("cannot write the log" in line for line in fw.errors) == 1
    finally:
        if fw is not None:
            fw.stop()
        subprocess.run(["umount", str(disk)], check=False)
