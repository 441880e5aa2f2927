"""How long a reload pauses forwarding: the worst request latency while rinetd-run reloads
a rule set of 5,000 rules (adding one), against the worst while nothing happens.

Run: .venv/bin/python bench/reload_latency.py [--rules N] [--reloads R] [--refused]
A client sends one byte and waits for it to come back through one rule, over and
over, on loopback only; each phase is bounded in time. Reading, checking and
resolving the new file happen in a thread, so only the swap runs on the loop.

``--refused`` measures reading alone, at any size: rinetd-run serves one rule,
and each SIGHUP finds a rule set of N rules (on 127.x.y.z addresses, never
bound) whose digest was broken, which is read, checked in full and refused.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def _ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind((HOST, 0))
        return [int(p.getsockname()[1]) for p in probes]


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind((HOST, 0))
    server.listen()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(64):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server, int(server.getsockname()[1])


def _compile(text: str, work: Path) -> None:
    (work / "rinetd.conf").write_text(text)
    subprocess.run(
        [str(BIN / "rinetdc"), "compile", str(work / "rinetd.conf"), "-o", str(work / "r.json")],
        check=True,
    )


def _started(rules: Path) -> subprocess.Popen[str]:
    """rinetd-run forwarding ``rules``, its stderr a pipe of text lines."""
    forwarder = subprocess.Popen(
        [str(BIN / "rinetd-run"), str(rules)], stderr=subprocess.PIPE, text=True
    )
    assert forwarder.stderr is not None
    while "forwarding" not in forwarder.stderr.readline():
        pass
    return forwarder


def _latencies(sock: socket.socket, seconds: float) -> list[float]:
    found = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        sock.sendall(b"x")
        sock.recv(1)
        found.append(time.perf_counter() - started)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=5000)
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--refused", action="store_true")
    arguments = parser.parse_args()
    if arguments.refused:
        _refused(arguments.rules, arguments.reloads)
        return
    work = Path(tempfile.mkdtemp(prefix="rinetdc-reload-"))
    server, backend = _echo_server()
    front, *others = _ports(arguments.rules + 1)
    rules = [f"{HOST} {front} {HOST} {backend}"] + [f"{HOST} {p} {HOST} 9" for p in others]
    _compile("\n".join(rules[:-1]) + "\n", work)
    forwarder = _started(work / "r.json")
    try:
        with socket.create_connection((HOST, front)) as sock:
            quiet = _latencies(sock, 3.0)
            worst_during = []
            for number in range(arguments.reloads):
                # Alternate between the two files, so every reload changes one rule.
                _compile("\n".join(rules if number % 2 == 0 else rules[:-1]) + "\n", work)
                forwarder.send_signal(signal.SIGHUP)
                worst_during.append(max(_latencies(sock, 2.0)))
        quiet_p99 = statistics.quantiles(quiet, n=100)[98]
        print(
            f"{arguments.rules} rules: request latency quiet p99 {quiet_p99 * 1e3:.2f} ms, "
            f"max {max(quiet) * 1e3:.2f} ms; worst during each of {arguments.reloads} reloads "
            + ", ".join(f"{w * 1e3:.1f}" for w in worst_during)
            + " ms"
        )
    finally:
        forwarder.send_signal(signal.SIGTERM)
        forwarder.wait(timeout=30)
        server.close()


def _refused(count: int, reloads: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="rinetdc-reload-"))
    server, backend = _echo_server()
    (front,) = _ports(1)
    rules = (f"127.{n // 62500}.{n // 250 % 250}.{n % 250 + 1} 80 {HOST} 9" for n in range(count))
    _compile("\n".join(rules) + "\n", work)
    big = (work / "r.json").read_text().replace('"line": 1,', '"line": 2,', 1)
    _compile(f"{HOST} {front} {HOST} {backend}\n", work)
    forwarder = _started(work / "r.json")
    samples: list[tuple[float, float]] = []  # (when sent, latency)
    done = threading.Event()

    def ping(sock: socket.socket) -> None:
        while not done.is_set():
            started = time.perf_counter()
            sock.sendall(b"x")
            sock.recv(1)
            samples.append((started, time.perf_counter() - started))

    try:
        (work / "r.json").write_text(big)
        with socket.create_connection((HOST, front)) as sock:
            pinger = threading.Thread(target=ping, args=(sock,))
            pinger.start()
            time.sleep(2.0)
            quiet = max(latency for _, latency in samples)
            worst_during = []
            for _ in range(reloads):
                begun = time.perf_counter()
                forwarder.send_signal(signal.SIGHUP)
                while "reload failed" not in forwarder.stderr.readline():
                    pass
                ended = time.perf_counter()
                time.sleep(0.3)
                during = [lat for when, lat in samples if begun <= when + lat and when <= ended]
                worst_during.append((max(during, default=0.0), ended - begun))
            done.set()
            pinger.join()
        print(
            f"{count} rules ({len(big) / 1e6:.0f} MB) read and refused: request latency quiet "
            f"max {quiet * 1e3:.2f} ms; worst during each of {reloads} reloads "
            + ", ".join(f"{w * 1e3:.1f} ms (reload {t:.1f} s)" for w, t in worst_during)
        )
    finally:
        forwarder.send_signal(signal.SIGTERM)
        forwarder.wait(timeout=30)
        server.close()


if __name__ == "__main__":
    main()
