"""What the process holds, read from /proc and the resource limits: descriptors, memory,
CPU time, start time.  The metrics page and the descriptor budget read them here."""

from __future__ import annotations

import contextlib
import os
import resource

from .counters import ProcessFacts

__all__ = ["ProcessFacts", "open_descriptors", "read"]


def open_descriptors() -> int | None:
    """How many descriptors the process has open now."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _memory() -> tuple[int, int] | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/statm") as statm:
            size, resident = (int(p) * os.sysconf("SC_PAGE_SIZE") for p in statm.read().split()[:2])
        return size, resident
    return None


def _start_time() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError, StopIteration):
        with open("/proc/self/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    return None


def read() -> ProcessFacts:
    times = os.times()
    return ProcessFacts(
        cpu_seconds=times.user + times.system,
        open_fds=open_descriptors(),
        max_fds=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        memory=_memory(),
        start_time=_start_time(),
    )
