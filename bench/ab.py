"""This checkout's rinetd-run against another checkout's (an older commit), interleaved on
one machine: churn requests/s, CPU per connection and RSS per idle connection, as
ratios new/old.  Sequential runs of bench/run.py differ by ~10% on a shared 2-core
machine; alternating the two versions round by round takes that drift out.

Run as root after bench/run.py installed wrk and nginx:
  git worktree add /tmp/old REV
  .venv/bin/python bench/ab.py /tmp/old [--rounds 6] [--seconds 4]
Loopback only; every load bounded in time; every process stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from run import (
    BIN,
    HOST,
    PORTS,
    _free_port,
    cpu_seconds,
    idle_memory,
    nginx_conf,
    process,
    wait_port,
    wrk,
)

ROOT = Path(__file__).resolve().parent.parent


def _command(checkout: Path, conf: Path) -> tuple[list[str], dict[str, str]]:
    """Compile with ``checkout``'s rinetdc; the command running its rinetd-run."""
    env = {**os.environ, "PYTHONPATH": f"{checkout}:{checkout / 'runtime'}"}
    rules = conf.with_suffix(".json")
    subprocess.run(
        [str(BIN / "rinetdc"), "compile", str(conf), "-o", str(rules)], check=True, env=env
    )
    return [str(BIN / "rinetd-run"), str(rules), "--grace", "1"], env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("other", type=Path, help="the other checkout (the old one)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--idle", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rinetdc-ab-"))
    found: dict[str, dict[str, list[float]]] = {"new": {}, "old": {}}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    with contextlib.ExitStack() as stack:
        nginx = ["nginx", "-c", str(nginx_conf(work)), "-g", "daemon off;"]
        stack.enter_context(process(nginx, **quiet))
        ports, pids = {}, {}
        for name, checkout in (("new", ROOT), ("old", args.other.resolve())):
            ports[name] = _free_port()
            conf = work / f"{name}.conf"
            conf.write_text(f"{HOST} {ports[name]} {HOST} {PORTS['nginx']}\n")
            command, env = _command(checkout, conf)
            pids[name] = stack.enter_context(process(command, env=env, **quiet)).pid
        wait_port(PORTS["nginx"])
        for port in ports.values():
            wait_port(port)
        for number in range(args.rounds):
            order = ("new", "old") if number % 2 == 0 else ("old", "new")
            for name in order:
                before = cpu_seconds(pids[name])
                result = wrk(ports[name], args.seconds, close=True)
                after = cpu_seconds(pids[name])
                done = result["rate"] * args.seconds
                row = found[name]
                row.setdefault("churn requests/s", []).append(result["rate"])
                row.setdefault("CPU user us/conn", []).append((after[0] - before[0]) / done * 1e6)
                row.setdefault("CPU system us/conn", []).append((after[1] - before[1]) / done * 1e6)
        for name in ("new", "old"):
            per, _held = idle_memory(pids[name], ports[name], args.idle)
            found[name]["RSS KiB per idle connection"] = [per]
    print(f"{'metric':32} {'new':>10} {'old':>10} {'new/old':>8}   (medians of {args.rounds})")
    for metric in found["new"]:
        new, old = (statistics.median(found[n][metric]) for n in ("new", "old"))
        print(f"{metric:32} {new:10.2f} {old:10.2f} {new / old:8.2f}")


if __name__ == "__main__":
    main()
