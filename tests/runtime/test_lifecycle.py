"""Start, reload and stop of a real rinetd-run process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import BIN, CORPUS, compile_config, parse_tab, wait_until
from tests.runtime.harness import (
    TcpEcho,
    connect_from,
    echo_once,
    free_port,
    recv_all,
    running,
    start_forwarder,
)


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.shutdown(socket.SHUT_WR)
            recv_all(sock)
        return False
    except ConnectionRefusedError:
        return True


def test_reload_adds_removes_and_keeps_rules(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    kept, removed, added = free_port(), free_port(), free_port()
    echo = tcp_echo.port
    first = (
        f"127.0.0.1 {kept} 127.0.0.1 {echo}\n127.0.0.1 {removed} 127.0.0.1 {echo}\nlogfile LOG\n"
    )
    with running(first, tmp_path) as fw:
        # A connection opened before the reload keeps flowing after it.
        long_lived = connect_from("127.0.0.1", kept)
        long_lived.sendall(b"before ")
        assert long_lived.recv(100) == b"before "
        orphan = connect_from("127.0.0.1", removed)  # its rule goes away in the reload
        orphan.sendall(b"x")
        assert orphan.recv(10) == b"x"

        # Keep probing the kept port during the reload: never a refusal.
        refusals: list[bool] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                refusals.append(_refused(kept))

        prober = threading.Thread(daemon=True, target=probe)
        prober.start()
        second = (
            f"127.0.0.1 {kept} 127.0.0.1 {echo}\nallow 127.0.0.1\n"
            f"127.0.0.1 {added} 127.0.0.1 {echo}\nlogfile LOG\n"
        )
        compile_config(second, tmp_path)
        fw.signal(signal.SIGHUP)
        fw.wait_for_reload()
        probed = len(refusals)
        wait_until(lambda: len(refusals) > probed + 10, "probes after the reload")
        stop.set()
        prober.join()

        assert refusals and not any(refusals)
        assert echo_once(added, b"hi") == b"hi"
        assert _refused(removed)
        long_lived.sendall(b"after")
        long_lived.shutdown(socket.SHUT_WR)
        assert recv_all(long_lived) == b"after"
        long_lived.close()
        orphan.sendall(b"yz")
        orphan.shutdown(socket.SHUT_WR)
        assert recv_all(orphan) == b"yz"
        orphan.close()
        fw.wait_for_log(f"\t{kept}\t127.0.0.1\t{echo}\t12\t12\t")
        lines = fw.wait_for_log(f"\t{removed}\t127.0.0.1\t{echo}\t3\t3\t")
    done = [parse_tab(line) for line in lines if "done" in line]
    assert {(d["bind_port"], d["bytes_in"], d["bytes_out"]) for d in done} >= {
        (str(kept), "12", "12"),  # the connection open across the reload
        (str(removed), "3", "3"),  # logged with its own rule, gone from the new set
    }


def test_broken_rule_set_on_reload_keeps_the_old_rules(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    port = free_port()
    with running(f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path) as fw:
        rules = fw.rules
        good = rules.read_text()
        rules.write_text(good.replace(str(port), str(port + 1)))  # edited: digest mismatch
        fw.signal(signal.SIGHUP)
        fw.wait_for_stderr("reload failed, keeping the old rules")
        assert echo_once(port, b"hi") == b"hi"
        rules.write_text("{ truncated")
        fw.signal(signal.SIGHUP)
        fw.wait_for_stderr("reload failed, keeping the old rules", count=2)
        assert echo_once(port, b"hi") == b"hi"
        assert fw.process.poll() is None


def test_reload_that_cannot_bind_changes_nothing(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    """A new rule set of three rules, one of whose ports is taken: none of it applies. The
    old rule keeps serving, the new rule that could bind does not listen, and the removed
    rule is still there."""
    port, added, taken = free_port(), free_port(), socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    with running(f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path) as fw:
        conf = (
            f"127.0.0.1 {added} 127.0.0.1 {tcp_echo.port}\n"
            f"127.0.0.1 {taken.getsockname()[1]} 127.0.0.1 {tcp_echo.port}\n"
        )
        compile_config(conf, tmp_path)
        fw.signal(signal.SIGHUP)
        fw.wait_for_stderr("reload failed")
        assert f"cannot bind 127.0.0.1 {taken.getsockname()[1]}/tcp" in fw.errors[-1]
        assert echo_once(port, b"hi") == b"hi"  # the rule the new set removes still serves
        assert _refused(added)  # the rule that could have bound was let go
        assert not any("reloaded:" in line for line in fw.errors)
    taken.close()


def test_reload_reopens_the_log_for_rotation(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    port = free_port()
    with running(f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\nlogfile LOG\n", tmp_path) as fw:
        echo_once(port, b"hi")
        fw.log_lines(2)
        fw.log.rename(tmp_path / "rinetd.log.1")
        fw.signal(signal.SIGHUP)
        fw.wait_for_reload()
        echo_once(port, b"hi")
        assert [parse_tab(line)["result"] for line in fw.log_lines(2)] == [
            "opened",
            "done-remote-closed",
        ]
    assert len((tmp_path / "rinetd.log.1").read_text().splitlines()) == 2


def test_sigterm_drains_open_connections_then_exits_0(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    port = free_port()
    pidfile = tmp_path / "rinetd.pid"
    conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\npidlogfile {pidfile}\nlogfile LOG\n"
    fw = start_forwarder(compile_config(conf, tmp_path), "--grace", "10")
    try:
        assert pidfile.read_text() == f"{fw.process.pid}\n"
        open_one = connect_from("127.0.0.1", port)
        open_one.sendall(b"in flight")
        assert open_one.recv(100) == b"in flight"
        fw.signal(signal.SIGTERM)
        time.sleep(0.3)
        assert _refused(port)  # no longer accepting
        open_one.sendall(b", still")  # but the open connection goes on
        open_one.shutdown(socket.SHUT_WR)
        assert recv_all(open_one) == b", still"
        open_one.close()
        assert fw.process.wait(timeout=10) == 0
        assert not pidfile.exists()
        lines = fw.log.read_text().splitlines()
        assert parse_tab(lines[-1])["bytes_in"] == str(len(b"in flight, still"))
    finally:
        fw.stop()


def test_grace_period_ends_stuck_connections(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    port = free_port()
    conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\nlogfile LOG\n"
    fw = start_forwarder(compile_config(conf, tmp_path), "--grace", "0.5")
    try:
        stuck = connect_from("127.0.0.1", port)
        fw.log_lines(1)
        started = time.monotonic()
        fw.signal(signal.SIGINT)
        assert fw.process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        assert parse_tab(fw.log_lines(2)[1])["result"] == "done-remote-closed"
        stuck.close()
    finally:
        fw.stop()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "rinetd-run"), *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_refused_rule_sets_exit_2(tmp_path: Path) -> None:
    good = (CORPUS / "valid" / "seed.json").read_text()
    cases = {
        "missing.json": None,
        "bad.json": "{ not json",
        "edited.json": good.replace("8080", "8081"),
        "future.json": json.dumps({**json.loads(good), "version": 99}),
    }
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        done = _run(str(tmp_path / name))
        assert done.returncode == 2, name
        assert done.stderr.startswith("rinetd-run: ") and "Traceback" not in done.stderr
    assert "digest mismatch" in _run(str(tmp_path / "edited.json")).stderr
    assert "version 99" in _run(str(tmp_path / "future.json")).stderr


def test_bind_failure_at_start_names_the_line_and_exits_1(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        conf = f"# a comment\n127.0.0.1 {taken.getsockname()[1]} 127.0.0.1 9\n"
        done = _run(str(compile_config(conf, tmp_path)))
        assert done.returncode == 1
        assert f"cannot bind 127.0.0.1 {taken.getsockname()[1]}/tcp (rule of line 2)" in done.stderr
    finally:
        taken.close()


def test_workers_share_ports_reload_and_stop_together(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    port, added = free_port(), free_port()
    pidfile = tmp_path / "rinetd.pid"
    conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\npidlogfile {pidfile}\nlogfile LOG\n"
    fw = start_forwarder(compile_config(conf, tmp_path), workers=2)
    try:
        assert pidfile.read_text() == f"{fw.process.pid}\n"  # the supervisor's
        workers = Path(f"/proc/{fw.process.pid}/task/{fw.process.pid}/children").read_text().split()
        assert len(workers) == 2
        for _ in range(20):
            assert echo_once(port, b"hi") == b"hi"
        compile_config(conf + f"127.0.0.1 {added} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
        fw.signal(signal.SIGHUP)
        fw.wait_for_reload(count=2)  # both workers
        for _ in range(20):  # whichever worker the kernel picks has the new rule
            assert echo_once(added, b"hi") == b"hi"
        fw.signal(signal.SIGTERM)
        assert fw.process.wait(timeout=15) == 0
        assert not pidfile.exists()
        assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
        assert len(fw.log.read_text().splitlines()) == 80  # every worker logged, nothing lost
    finally:
        fw.stop()


def test_workers_write_one_log_without_broken_lines(tmp_path: Path, tcp_echo: TcpEcho) -> None:
    """Two workers append to one log at once: every line is whole, none is lost."""
    port = free_port()
    conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\nlogfile LOG\n"
    fw = start_forwarder(compile_config(conf, tmp_path), workers=2)
    try:
        answers: list[bytes] = []

        def client(number: int) -> None:
            for _ in range(30):
                answers.append(echo_once(port, b"%05d" % number * 20))

        threads = [threading.Thread(daemon=True, target=client, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(answers) == 600 and all(len(answer) == 100 for answer in answers)
        fw.signal(signal.SIGTERM)
        assert fw.process.wait(timeout=15) == 0
    finally:
        fw.stop()
    lines = [parse_tab(line) for line in fw.log.read_text().splitlines()]
    assert [line["result"] for line in lines].count("opened") == 600
    closing = [line for line in lines if line["result"] != "opened"]
    assert len(closing) == 600
    assert {(line["bytes_in"], line["bytes_out"], line["result"]) for line in closing} == {
        ("100", "100", "done-remote-closed")
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unwritable_pid_file_is_said_and_forwarding_goes_on(
    tmp_path: Path, tcp_echo: TcpEcho, workers: int
) -> None:
    """The single process and the --workers supervisor treat the pid file alike."""
    port = free_port()
    pidfile = tmp_path / "missing" / "rinetd.pid"
    conf = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\npidlogfile {pidfile}\n"
    fw = start_forwarder(compile_config(conf, tmp_path), workers=workers)
    try:
        fw.wait_for_stderr("cannot write pid file")
        assert echo_once(port, b"hi") == b"hi"
        fw.signal(signal.SIGTERM)
        assert fw.process.wait(timeout=15) == 0
        time.sleep(0.1)
        assert not any("Traceback" in line for line in fw.errors), fw.errors
    finally:
        fw.stop()
