"""Across network namespaces: rinetd 0.73, rinetd-run in user space and rinetd-run with
``dataplane kernel`` side by side, in turns, in one run; prints medians and ratios.

A client, a forwarder and a backend namespace joined by veth pairs, as rinetd is used
on a gateway; the client also has a veth pair straight to the backend, the "direct"
column: the machine's physical limit, no forwarder at all.  nginx and an iperf3 server
run in the backend.  Each forwarder has its own ports on the forwarder's address;
rinetd-run in kernel mode runs once without a log file and, after the other loads of
each round, once with one (its log lines come from conntrack's events), since one
table serves a namespace.

Run as root: `.venv/bin/python bench/namespaces.py` (Debian's rinetd, iperf3, wrk and
nginx are installed when missing, as bench/run.py does).  Not part of the test command.
Traffic goes only between the namespaces it creates; every load is bounded in time;
every namespace and process it made is removed at the end, even when it fails.
About four minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from run import cpu_seconds, install, iperf, nginx_conf, process, rinetd_run, wrk

PREFIX = f"rbench{os.getpid() % 100000}"
CLIENT, FORWARDER, BACKEND = (f"{PREFIX}-{role}" for role in ("c", "f", "b"))
# The forwarder's address for clients, and the backend's for the forwarder and direct.
FRONT, BACK, DIRECT = "10.71.1.1", "10.71.2.2", "10.71.3.2"
HTTP, IPERF = 80, 5201
# nginx's port for each forwarder (and its logged twin): a closed connection's tuple
# stays in TIME_WAIT at the backend, and a new connection on the same tuple from another
# forwarder (masquerade keeps the client's port) would be refused for a second there.
SERVED = {"rinetd": (81, 84), "rinetd-run": (82, 85), "run kernel": (83, 86)}
PORTS = {  # (http, iperf) on FRONT
    "rinetd": (8001, 8101),
    "rinetd-run": (8002, 8102),
    "run kernel": (8003, 8103),
}
LOGGED = {"rinetd": 8011, "rinetd-run": 8012, "run kernel": 8013}


def _in(namespace: str) -> list[str]:
    return ["ip", "netns", "exec", namespace]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


@contextlib.contextmanager
def namespaces() -> Iterator[None]:
    try:
        for namespace in (CLIENT, FORWARDER, BACKEND):
            _ip("netns", "add", namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
        links = [  # (one end, its address, other end, its address)
            (CLIENT, "10.71.1.2", FORWARDER, FRONT),
            (BACKEND, BACK, FORWARDER, "10.71.2.1"),
            (CLIENT, "10.71.3.1", BACKEND, DIRECT),
        ]
        for number, (one, one_address, other, other_address) in enumerate(links):
            a, b = f"{PREFIX}a{number}", f"{PREFIX}b{number}"
            _ip("link", "add", a, "netns", one, "type", "veth", "peer", "name", b, "netns", other)
            for namespace, link, address in ((one, a, one_address), (other, b, other_address)):
                _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", link)
                _ip("-n", namespace, "link", "set", link, "up")
        yield
    finally:
        for namespace in (CLIENT, FORWARDER, BACKEND):
            pids = subprocess.run(
                ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def _nginx_ports() -> list[int]:
    return [HTTP] + [port for pair in SERVED.values() for port in pair]


def _nginx_conf(work: Path) -> Path:
    listens = " ".join(f"listen 0.0.0.0:{port} backlog=4096;" for port in _nginx_ports())
    return nginx_conf(work, f'  server {{ {listens} location / {{ return 200 "hello\\n"; }} }}')


def _wait(port: int, host: str = FRONT) -> None:
    probe = f"import socket; socket.create_connection(('{host}', {port}), timeout=1).close()"
    for _ in range(200):
        if (
            subprocess.run([*_in(CLIENT), "python3", "-c", probe], capture_output=True).returncode
            == 0
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers on {host} {port}")


def _rules(name: str, http: int, log: Path | None) -> str:
    """The HTTP rule, and the bulk rule unless logged (churn alone is measured then)."""
    text = f"{FRONT} {http} {BACK} {SERVED[name][1 if log else 0]}\n"
    if log:
        text += f"logfile {log}\n"
    else:
        text += f"{FRONT} {PORTS[name][1]} {BACK} {IPERF}\n"
    return ("dataplane kernel\n" if name == "run kernel" else "") + text


def _start(work: Path, name: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """A forwarder in the forwarder's namespace; with ``log``, on its LOGGED port."""
    http = LOGGED[name] if log else PORTS[name][0]
    conf = work / f"{name.replace(' ', '-')}{'-logged' if log else ''}.conf"
    conf.write_text(_rules(name, http, log))
    command = ["/usr/sbin/rinetd", "-f", "-c", str(conf)] if name == "rinetd" else rinetd_run(conf)
    started = subprocess.Popen([*_in(FORWARDER), *command], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    _wait(http)
    return started


def _stop(started: subprocess.Popen[bytes]) -> None:
    """Stopped and gone: a kernel-mode run removes its table as it exits."""
    if started.poll() is None:
        started.terminate()
        try:
            started.wait(timeout=15)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait()


def _churn_cpu(
    pid: int, measure: Callable[[], dict[str, float]]
) -> tuple[dict[str, float], tuple[float, float]]:
    """A churn load's result, and the forwarder's user and system CPU per connection."""
    used, started = cpu_seconds(pid), time.monotonic()
    found = measure()
    now, count = cpu_seconds(pid), found["rate"] * (time.monotonic() - started)
    return found, ((now[0] - used[0]) * 1e6 / count, (now[1] - used[1]) * 1e6 / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()
    install()
    work = Path(tempfile.mkdtemp(prefix="rinetdc-bench-ns-"))
    client = _in(CLIENT)
    results: dict[str, dict[str, list[float]]] = {}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}

    def record(name: str, metric: str, value: float) -> None:
        results.setdefault(name, {}).setdefault(metric, []).append(value)

    with namespaces(), contextlib.ExitStack() as stack:
        nginx = ["nginx", "-c", str(_nginx_conf(work)), "-g", "daemon off;"]
        stack.enter_context(process([*_in(BACKEND), *nginx], **quiet))
        stack.enter_context(process([*_in(BACKEND), "iperf3", "-s", "-p", str(IPERF)], **quiet))
        _wait(HTTP, DIRECT)
        running = {name: _start(work, name) for name in PORTS}
        running |= {f"{name} logged": _start(work, name, work / f"{name}.log")
                    for name in ("rinetd", "rinetd-run")}  # fmt: skip
        stack.callback(lambda: [_stop(each) for each in running.values()])
        targets = {"direct": (DIRECT, HTTP, IPERF)} | {
            name: (FRONT, *PORTS[name]) for name in PORTS
        }
        order = list(targets)
        for _round in range(args.rounds):
            # A shuffled order each round: no one always follows another (a fixed order
            # favoured whoever ran first on this shared 2-core machine).
            random.shuffle(order)
            for name in order:
                host, _http, bulk = targets[name]
                record(name, "bulk 1 stream (Gbit/s)", iperf(bulk, 1, args.seconds, host, client))
            for name in order:
                host, http, _bulk = targets[name]
                found = wrk(http, args.seconds, False, host, client)
                record(name, "kept-alive requests/s", found["rate"])
                record(name, "latency p99 (ms)", found["p99"])
                record(name, "kept-alive errors", found["errors"])
            for name in order:
                host, http, _bulk = targets[name]
                pid = running[name].pid if name in running else None
                load = functools.partial(wrk, http, args.seconds, True, host, client)
                found, cpu = _churn_cpu(pid, load) if pid else (load(), (0.0, 0.0))
                record(name, "churn requests/s", found["rate"])
                record(name, "churn errors", found["errors"])
                if pid:
                    record(name, "churn CPU user (us/conn)", cpu[0])
                    record(name, "churn CPU system (us/conn)", cpu[1])
            for name in ("rinetd", "rinetd-run"):
                found = wrk(LOGGED[name], args.seconds, True, FRONT, client)
                record(name, "churn with a log file, requests/s", found["rate"])
            # The kernel's rules once more, logged: one table serves the namespace.
            _stop(running.pop("run kernel"))
            logged = _start(work, "run kernel", work / "kernel.log")
            try:
                load = functools.partial(
                    wrk, LOGGED["run kernel"], args.seconds, True, FRONT, client
                )
                found, cpu = _churn_cpu(logged.pid, load)
                record("run kernel", "churn with a log file, requests/s", found["rate"])
                record("run kernel", "churn with a log file, CPU user (us/conn)", cpu[0])
                record("run kernel", "churn with a log file, CPU system (us/conn)", cpu[1])
            finally:
                _stop(logged)
            running["run kernel"] = _start(work, "run kernel")
    report(results)
    goals(results)
    log = work / "kernel.log"
    print(
        f"lines the kernel data plane logged: {sum(1 for _ in log.open()) if log.exists() else 0}"
    )


def report(results: dict[str, dict[str, list[float]]]) -> None:
    names = [n for n in ("direct", "rinetd", "rinetd-run", "run kernel") if n in results]
    ours = ["rinetd-run", "run kernel"]
    metrics = list(dict.fromkeys(m for n in names for m in results[n]))
    print(f"{'metric':40}" + "".join(f"{n:>14}" for n in names)
          + "".join(f"{'ratio ' + n:>18}" for n in ours))  # fmt: skip
    for metric in metrics:
        cells = {
            n: statistics.median(results[n][metric]) if metric in results[n] else float("nan")
            for n in names
        }
        base = cells.get("rinetd", float("nan"))
        ratios = [cells[n] / base if base else float("nan") for n in ours]
        print(f"{metric:40}" + "".join(f"{cells[n]:14.2f}" for n in names)
              + "".join(f"{r:18.2f}" for r in ratios))  # fmt: skip


def goals(results: dict[str, dict[str, list[float]]]) -> None:
    """The kernel data plane's goals as ratios paired round by round (each round's
    kernel figure over the other one's in the same round): median and middle half."""
    kernel = results.get("run kernel", {})
    for metric, base, goal in (
        ("bulk 1 stream (Gbit/s)", "direct", 0.9),
        ("kept-alive requests/s", "rinetd", 1.5),
        ("churn requests/s", "rinetd", 1.5),
    ):
        ours, theirs = kernel.get(metric, []), results.get(base, {}).get(metric, [])
        ratios = [a / b for a, b in zip(ours, theirs, strict=True) if b]
        if not ratios:
            continue
        middle = statistics.median(ratios)
        spread = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [middle] * 3
        print(
            f"run kernel / {base}, {metric}: paired {middle:.2f}x "
            f"({spread[0]:.2f}x-{spread[2]:.2f}x), goal {goal}x"
        )


if __name__ == "__main__":
    main()
