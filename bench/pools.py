"""A rule with a pool of three members against a rule with one backend, interleaved on one
machine: churn requests/s and CPU per connection, as ratios to the one backend.  Also a
rule with one backend in a process that checks 1,000 pool members (health-interval 5):
what the checks cost the forwarding path; and a pool of one member, which separates the
cost of choosing from that of spreading over three backends; and the pool of three with
balance=source, which sends this bench's one client address to one member: choosing
among three (by the source hash, dearer than round robin's choice) without spreading.
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
    "pool of 1",
    "pool of 3",
    "pool of 3, source",
    "one backend, 1000 checked",
)


def _text(name: str, port: int) -> str:
    if name.startswith("pool of"):
        chosen = POOL[: int(name[len("pool of ")])]
        members = "".join(f"pool web {HOST} {member}\n" for member in chosen)
        balance = " [balance=source]" if name.endswith("source") else ""
        return f"{members}{HOST} {port} @web{balance}\n"
    plain = f"{HOST} {port} {HOST} {PORTS['nginx']}\n"
    if name == "one backend":
        return plain
    members = (f"127.0.{5 + n // 250}.{1 + n % 250}" for n in range(1000))
    checked = "".join(f"pool checked {member} 9\n" for member in members)
    return f"{checked}{HOST} {_free_port()} @checked [health-interval=5]\n{plain}"


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
        for number, name in enumerate(VARIANTS):
            conf = work / f"variant{number}.conf"
            conf.write_text(_text(name, ports[name]))
            pids[name] = stack.enter_context(process(rinetd_run(conf), **quiet)).pid
        for port in (*POOL, *ports.values()):
            wait_port(port)
        order = list(VARIANTS)
        for _round in range(args.rounds):
            random.shuffle(order)
            for name in order:
                before = cpu_seconds(pids[name])
                found = wrk(ports[name], args.seconds, close=True)
                after = cpu_seconds(pids[name])
                assert found["errors"] == 0, (name, found)
                rates[name].append(found["rate"])
                count = found["rate"] * args.seconds
                cpu[name].append((after[0] - before[0] + after[1] - before[1]) * 1e6 / count)
    base_rate = statistics.median(rates["one backend"])
    base_cpu = statistics.median(cpu["one backend"])
    print(f"{'variant':28}{'churn/s':>10}{'ratio':>8}{'CPU us/conn':>14}{'ratio':>8}")
    for name in VARIANTS:
        rate, used = statistics.median(rates[name]), statistics.median(cpu[name])
        print(f"{name:28}{rate:10.0f}{rate / base_rate:8.2f}{used:14.1f}{used / base_cpu:8.2f}")
    print(f"{args.rounds} rounds of {args.seconds} s each, medians, shuffled order each round")


if __name__ == "__main__":
    main()
