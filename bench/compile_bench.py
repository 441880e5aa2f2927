"""Time `rinetdc compile` of a generated 10,000-rule configuration (median of rounds).

Run: .venv/bin/python bench/compile_bench.py [--rules N] [--rounds R]
Prints seconds per compile; the issue's goal is under one second.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rinetdc.check import check, paused_gc
from rinetdc.emit import render
from rinetdc.resolve import NoResolver


def config(rules: int) -> str:
    lines = ["# generated", "allow 10.*", "deny 10.0.0.1", "logfile /var/log/rinetd.log"]
    for number in range(rules):
        port = 10000 + number
        address = f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
        udp = number % 10 == 0
        proto, options = ("/udp", " [timeout=30]") if udp else ("", " [src=10.255.0.1]")
        lines.append(f"0 {port}{proto} {address} {8000 + number % 1000}{proto}{options}")
        if number % 3 == 0:
            lines.append(f"allow 10.{number % 256}.*")
    return "\n".join(lines) + "\n"


def compile_seconds(text: str) -> float:
    started = time.perf_counter()
    with paused_gc():  # as `rinetdc compile` does
        result = check(text, NoResolver())
        render(result.ruleset, resolved=False)
    elapsed = time.perf_counter() - started
    assert not result.diagnostics, result.diagnostics[:3]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    text = config(arguments.rules)
    times = [compile_seconds(text) for _ in range(arguments.rounds)]
    print(
        f"compile of {arguments.rules} rules: median {statistics.median(times):.3f} s "
        f"(min {min(times):.3f}, max {max(times):.3f}, {arguments.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
