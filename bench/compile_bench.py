"""Time the compile of generated configurations (median of rounds): 10,000 rules on
10,000 ports, 10,000 rules on one port (the bind checks' worst case), 100,000 rules.

Run: .venv/bin/python bench/compile_bench.py [--rules N ...] [--rounds R]
Prints seconds per compile; the goal is under one second for 10,000 rules.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rinetdc.check import check, paused_gc
from rinetdc.emit import seal
from rinetdc.resolve import NoResolver


def _address(first: int, number: int) -> str:
    """A distinct address for each number, never ending in .0."""
    block = number // 254
    return f"{first}.{block // 256 % 256}.{block % 256}.{number % 254 + 1}"


def config(rules: int, one_port: bool = False) -> str:
    """``rules`` rules, each binding its own address; on one port, or spread over ports."""
    lines = ["# generated", "allow 10.*", "deny 10.0.0.1", "logfile /var/log/rinetd.log"]
    for number in range(rules):
        port = 10000 if one_port else 10000 + number % 50000
        udp = number % 10 == 0
        proto, options = ("/udp", " [timeout=30]") if udp else ("", " [src=10.255.0.1]")
        bind = _address(127, number)
        connect = f"{_address(10, number)} {8000 + number % 1000}{proto}"
        lines.append(f"{bind} {port}{proto} {connect}{options}")
        if number % 3 == 0:
            lines.append(f"allow 10.{number % 256}.*")
    return "\n".join(lines) + "\n"


def compile_seconds(text: str) -> float:
    started = time.perf_counter()
    with paused_gc():  # as `rinetdc compile` does
        result = check(text, NoResolver())
        seal(result.ruleset)
    elapsed = time.perf_counter() - started
    assert not result.diagnostics, result.diagnostics[:3]
    return elapsed


def measure(rules: int, rounds: int, one_port: bool) -> str:
    text = config(rules, one_port)
    times = [compile_seconds(text) for _ in range(rounds)]
    where = "on one port" if one_port else "on their own ports"
    return (
        f"compile of {rules} rules {where}: median {statistics.median(times):.3f} s "
        f"(min {min(times):.3f}, max {max(times):.3f}, {rounds} rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    print(measure(10_000, arguments.rounds, one_port=False))
    print(measure(10_000, arguments.rounds, one_port=True))
    print(measure(100_000, max(1, arguments.rounds // 3), one_port=False))


if __name__ == "__main__":
    main()
