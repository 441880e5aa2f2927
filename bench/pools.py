"""A rule with a pool of three members against a rule with one backend, interleaved on one
machine: churn requests/s and CPU per connection, as ratios to the one backend.  The one
backend and the pools are rules of one process, so that their ratio is the pools' cost
and not the difference between two processes.  Beside them: a pool of one member, which
separates the cost of choosing from that of spreading over three backends; the pool of
three with balance=source, which sends this bench's one client address to one member
(choosing by the source hash, dearer than round robin's choice, without spreading); the
one backend again in a process of its own, whose ratio is what two processes differ by
in this run; and a rule with one backend in a process that checks 1,000 pool members
(health-interval 5), to be read against that one: what the checks cost the forwarding
path.  The checks run in a process of rinetd-run's own (the health checker): the CPU
per connection is the forwarding process's alone, and the checker's share of a core
over the run is printed apart.
Each round runs them in a shuffled order, so that no one always follows another
(bench/run.py's fixed order favours its first forwarder by ~10% on a shared 2-core
machine).

Run as root after bench/run.py installed wrk and nginx:
  .venv/bin/python bench/pools.py [--rounds 8] [--seconds 4]
Loopback only (the 1,000 members are 127.0.5.x-127.0.8.x addresses where nothing
listens); every load bounded in time; every process stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from run import (
    HOST,
    POOL,
    PORTS,
    _free_port,
    cpu_seconds,
    nginx_conf,
    process,
    rinetd_run,
    wait_port,
    wrk,
)

VARIANTS = (
    "one backend",
    "one backend, again",
    "pool of 1",
    "pool of 3",
    "pool of 3, source",
    "one backend, 1000 checked",
)


# The one backend and the pools are rules of one process: two processes differ by more
# (up to ~8% over 16 rounds: memory layout, core, timing) than the pools cost.
SHARED = ("one backend", "pool of 1", "pool of 3", "pool of 3, source")


def _rule(name: str, port: int) -> str:
    if name == "pool of 1":
        return f"{HOST} {port} @one\n"
    if name.startswith("pool of 3"):
        balance = " [balance=source]" if name.endswith("source") else ""
        return f"{HOST} {port} @web{balance}\n"
    return f"{HOST} {port} {HOST} {PORTS['nginx']}\n"


def _texts(ports: dict[str, int]) -> list[tuple[list[str], str]]:
    """The processes to start: the variants each serves, and its configuration."""
    pools = f"pool one {HOST} {POOL[0]}\n" + "".join(
        f"pool web {HOST} {member}\n" for member in POOL
    )
    shared = pools + "".join(_rule(name, ports[name]) for name in SHARED)
    again = _rule("one backend", ports["one backend, again"])
    members = (f"127.0.{5 + n // 250}.{1 + n % 250}" for n in range(1000))
    checked = "".join(f"pool checked {member} 9\n" for member in members)
    checker = f"{checked}{HOST} {_free_port()} @checked [health-interval=5]\n"
    checker += _rule("one backend", ports["one backend, 1000 checked"])
    return [
        (list(SHARED), shared),
        (["one backend, again"], again),
        (["one backend, 1000 checked"], checker),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rinetdc-pools-"))
    ports = {name: _free_port() for name in VARIANTS}
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    with contextlib.ExitStack() as stack:
        nginx = ["nginx", "-c", str(nginx_conf(work)), "-g", "daemon off;"]
        stack.enter_context(process(nginx, **quiet))
        pids = {}
        for number, (names, text) in enumerate(_texts(ports)):
            conf = work / f"process{number}.conf"
            conf.write_text(text)
            pid = stack.enter_context(process(rinetd_run(conf), **quiet)).pid
            pids.update(dict.fromkeys(names, pid))
        for port in (*POOL, *ports.values()):
            wait_port(port)
        checked = pids["one backend, 1000 checked"]
        checker = _children(checked)
        started, checker_before = time.monotonic(), _cpu(checker)
        order = list(VARIANTS)
        for _round in range(args.rounds):
            random.shuffle(order)
            for name in order:
                before = _cpu([pids[name]])
                found = wrk(ports[name], args.seconds, close=True)
                after = _cpu([pids[name]])
                assert found["errors"] == 0, (name, found)
                rates[name].append(found["rate"])
                count = found["rate"] * args.seconds
                cpu[name].append((after - before) * 1e6 / count)
        share = (_cpu(checker) - checker_before) / (time.monotonic() - started)
    base_rate = statistics.median(rates["one backend"])
    base_cpu = statistics.median(cpu["one backend"])
    print(
        f"{'variant':28}{'churn/s':>10}{'ratio':>8}{'CPU us/conn':>14}{'ratio':>8}"
        f"{'paired ratio (quartiles)':>30}"
    )
    for name in VARIANTS:
        rate, used = statistics.median(rates[name]), statistics.median(cpu[name])
        paired = _quartiles([a / b for a, b in zip(rates[name], rates["one backend"], strict=True)])
        print(
            f"{name:28}{rate:10.0f}{rate / base_rate:8.2f}{used:14.1f}{used / base_cpu:8.2f}"
            f"{paired:>30}"
        )
    print(f"{args.rounds} rounds of {args.seconds} s each, medians, shuffled order each round")
    print("paired ratio: each round's churn over the one backend's in the same round")
    print(f"the health checker of 1,000 members (its own process): {share:.1%} of a core")


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (its health checker), waited for a while."""
    for _ in range(100):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        if text.split():
            return [int(child) for child in text.split()]
        time.sleep(0.05)
    raise SystemExit(f"rinetd-run {pid} started no health checker")


def _cpu(pids: list[int]) -> float:
    """User and system CPU seconds of these processes (not of their children)."""
    return sum(sum(cpu_seconds(pid, children=False)) for pid in pids)


def _quartiles(values: list[float]) -> str:
    """Median and the middle half of a round-by-round ratio: how far one round's verdict
    can be trusted (the ratio of medians above hides the spread)."""
    if len(values) < 2:
        return f"{values[0]:.2f}" if values else "-"
    low, middle, high = statistics.quantiles(values, n=4)
    return f"{middle:.2f} ({low:.2f}-{high:.2f})"


if __name__ == "__main__":
    main()
