"""``--workers N``: N forwarding processes that share each listening port (SO_REUSEPORT).

The kernel spreads new connections (and UDP clients, by address) over the
workers. The parent forwards nothing itself: it writes the pid file, passes
SIGHUP, SIGTERM and SIGINT on to every worker, and exits when they have,
stopping the others if one fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from types import FrameType

from .pidfile import pidfile

__all__ = ["supervise"]


def supervise(count: int, work: Callable[[int], int], path_of_pid: str | None) -> int:
    """Run ``work`` in ``count`` forked processes, each given its number (0, 1, ...);
    return the exit code for the whole."""
    children: set[int] = set()
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = work(index)
            finally:
                os._exit(code)
        children.add(pid)

    def forward(number: int, _frame: FrameType | None) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, number)

    for number in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(number, forward)
    # Held since main's first line (the workers inherit that and unblock once ready);
    # one that came meanwhile is passed on now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP, signal.SIGTERM, signal.SIGINT})
    result = 0
    with pidfile(path_of_pid):
        while children:
            pid, status = os.wait()
            children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            if code != 0 and result == 0:
                result = code if code > 0 else 1
                forward(signal.SIGTERM, None)
    return result
