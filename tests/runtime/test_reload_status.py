"""``--status FILE`` and ``rinetd-run --reload PID --status FILE``: a reload asked for
this way is waited for and its outcome is the exit code (0 taken, 1 refused and the
old rules serve, 3 no answer), with one process and with workers."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.helpers import BIN, compile_config
from tests.runtime.harness import TcpEcho, free_port, recv_all, start_forwarder


def ask(pid: int, status: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "rinetd-run"), "--reload", str(pid), "--status", str(status), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def forwards(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"x")
            client.shutdown(socket.SHUT_WR)
            return recv_all(client) == b"x"
    except OSError:
        return False


@pytest.mark.parametrize("workers", [1, 2])
def test_the_outcome_of_the_reload_asked_for_is_the_exit_code(
    tcp_echo: TcpEcho, tmp_path: Path, workers: int
) -> None:
    old, new, held = free_port(), free_port(), free_port()
    status = tmp_path / "status.json"
    rules = compile_config(f"127.0.0.1 {old} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
    fw = start_forwarder(rules, "--status", str(status), workers=workers)
    try:
        assert '"began": 0' in status.read_text()
        compile_config(f"127.0.0.1 {new} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
        taken = ask(fw.process.pid, status)
        assert taken.returncode == 0, taken.stderr
        assert f"process {fw.process.pid}: reloaded" in taken.stderr
        assert forwards(new) and not forwards(old)  # at once: the exit came after the swap

        with socket.socket() as busy:  # a port another program holds: the reload fails
            busy.bind(("127.0.0.1", held))
            busy.listen()
            compile_config(f"127.0.0.1 {held} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
            refused = ask(fw.process.pid, status)
        assert refused.returncode == 1, refused.stderr
        assert "reload failed, keeping the old rules" in refused.stderr
        if workers == 1:
            assert f"cannot bind 127.0.0.1 {held}/tcp" in refused.stderr
        else:
            assert "could not apply it" in refused.stderr
        assert forwards(new)  # the old rules serve on
    finally:
        assert fw.stop() == 0
    assert not status.exists()  # removed at stop, like the pid file
    gone = ask(fw.process.pid, status, "--wait", "2")
    assert gone.returncode == 3 and "no process" in gone.stderr, gone.stderr


def test_a_refused_reload_still_reopens_the_log(tcp_echo: TcpEcho, tmp_path: Path) -> None:
    port, held = free_port(), free_port()
    status = tmp_path / "status.json"
    rule = f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n"
    fw = start_forwarder(compile_config(f"logfile LOG\n{rule}", tmp_path), "--status", str(status))
    try:
        assert forwards(port)
        fw.log_lines(2)
        fw.log.rename(tmp_path / "rinetd.log.1")  # as logrotate does, then SIGHUP
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", held))
            busy.listen()
            compile_config(f"logfile LOG\n{rule}127.0.0.1 {held} 127.0.0.1 1\n", tmp_path)
            assert ask(fw.process.pid, status).returncode == 1
        assert forwards(port)
        assert len(fw.log_lines(2)) == 2  # a new file, the old rules' log
        assert len((tmp_path / "rinetd.log.1").read_text().splitlines()) == 2
    finally:
        fw.stop()


def test_reloads_asked_for_at_once_each_get_their_answer(tcp_echo: TcpEcho, tmp_path: Path) -> None:
    port = free_port()
    status = tmp_path / "status.json"
    rules = compile_config(f"127.0.0.1 {port} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
    fw = start_forwarder(rules, "--status", str(status))
    answers: list[subprocess.CompletedProcess[str]] = []
    try:
        askers = [
            threading.Thread(target=lambda: answers.append(ask(fw.process.pid, status)))
            for _ in range(8)
        ]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join()
        assert [answer.returncode for answer in answers] == [0] * 8
        assert forwards(port)
    finally:
        fw.stop()


def test_a_status_file_that_cannot_be_written_stops_the_start(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    rules = compile_config(f"127.0.0.1 {free_port()} 127.0.0.1 {tcp_echo.port}\n", tmp_path)
    done = subprocess.run(
        [str(BIN / "rinetd-run"), str(rules), "--status", str(tmp_path / "no" / "status")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert f"cannot write the status file {tmp_path}/no/status" in done.stderr


def test_a_process_that_never_answers_is_no_answer_and_a_fifo_does_not_hang(
    tmp_path: Path,
) -> None:
    # A process that ignores SIGHUP and writes no status: asked, it gives no answer.
    silent = subprocess.Popen(
        [
            "python3",
            "-c",
            "import signal, time; signal.signal(1, signal.SIG_IGN); print(flush=True); "
            "time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert silent.stdout is not None and silent.stdout.readline() == b"\n"
        fifo = tmp_path / "status.json"
        os.mkfifo(fifo)
        done = ask(silent.pid, fifo, "--wait", "0.5")
        assert done.returncode == 3
        assert "did not say how the reload ended within 0.5 s" in done.stderr
        assert silent.poll() is None  # SIGHUP ignored, still there
    finally:
        silent.kill()
        silent.wait()


@pytest.mark.parametrize(
    "arguments",
    [
        ["--reload", "5"],  # no --status
        ["--reload", "0", "--status", "s"],
        ["--reload", "5", "--status", "s", "--wait", "0"],
        ["--reload", "5", "--status", "s", "rules.json"],
        [],
    ],
)
def test_a_wrong_reload_request_is_a_usage_error(arguments: list[str]) -> None:
    done = subprocess.run(
        [str(BIN / "rinetd-run"), *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "usage:" in done.stderr, done.stderr
