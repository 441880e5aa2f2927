"""``--workers N``: N forwarding processes that share each listening port (SO_REUSEPORT).

The kernel spreads new connections (and UDP clients, by address) over the
workers. The parent forwards nothing itself: it writes the pid file, passes
SIGTERM and SIGINT on to every worker, and exits when they have, stopping the
others if one fails.

A reload applies in every worker or in none.  SIGHUP goes to the parent, which
runs one round at a time over a pair of pipes per worker: it asks every worker
to prepare the reload (read, check, bind: all that can fail), each answers
whether it can, and the parent tells all of them to take it only if every one
can, else to keep the old rules.  SIGHUPs during a round are one more round
after it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from .pidfile import pidfile

__all__ = ["ABORT", "COMMIT", "NO", "PREPARE", "YES", "Channel", "supervise"]

PREPARE, COMMIT, ABORT = b"r", b"c", b"a"  # parent -> worker
YES, NO = b"y", b"n"  # worker -> parent: the new rule set can be applied here, or not


@dataclass(frozen=True)
class Channel:
    """A worker's ends of its two pipes to the parent."""

    inbox: int  # requests and verdicts from the parent
    outbox: int  # votes to the parent


@dataclass
class _Worker:
    pid: int
    requests: int  # the parent's write end
    votes: int  # the parent's read end
    vote: bytes = b""


def supervise(count: int, work: Callable[[int, Channel], int], path_of_pid: str | None) -> int:
    """Run ``work`` in ``count`` forked processes, each given its number (0, 1, ...)
    and its channel; return the exit code for the whole."""
    workers: dict[int, _Worker] = {}
    for index in range(count):
        requests_read, requests_write = os.pipe()
        votes_read, votes_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for other in workers.values():
                    os.close(other.requests)
                    os.close(other.votes)
                os.close(requests_write)
                os.close(votes_read)
                code = work(index, Channel(requests_read, votes_write))
            finally:
                os._exit(code)
        os.close(requests_read)
        os.close(votes_write)
        workers[pid] = _Worker(pid, requests_write, votes_read)
    return _Supervisor(workers).run(path_of_pid)


class _Supervisor:
    def __init__(self, workers: dict[int, _Worker]) -> None:
        self.workers = workers
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        self.reload_wanted = False
        self.round_open = False
        self.result = 0

    def run(self, path_of_pid: str | None) -> int:
        def forward(number: int, _frame: FrameType | None) -> None:
            self._send_signal(number)

        def reload(_number: int, _frame: FrameType | None) -> None:
            self.reload_wanted = True
            with contextlib.suppress(OSError):
                os.write(self.wake_write, b"x")

        signal.signal(signal.SIGHUP, reload)
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        # Held since main's first line (the workers inherit that and unblock once ready);
        # one that came meanwhile is acted on now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP, signal.SIGTERM, signal.SIGINT})
        with pidfile(path_of_pid):
            while self.workers:
                self._turn()
        return self.result

    def _turn(self) -> None:
        if self.reload_wanted and not self.round_open:
            self.reload_wanted, self.round_open = False, True
            for worker in self.workers.values():
                worker.vote = b""
                self._tell(worker, PREPARE)
        votes = {worker.votes: worker for worker in self.workers.values()}
        # A short timeout: a worker's end is seen by polling waitpid, not by a signal.
        readable, _, _ = select.select([self.wake_read, *votes], [], [], 0.2)
        for fd in readable:
            data = os.read(fd, 64)
            if fd in votes and data:
                votes[fd].vote = data[-1:]
        self._reap()
        if self.round_open and all(worker.vote for worker in self.workers.values()):
            verdict = COMMIT if all(w.vote == YES for w in self.workers.values()) else ABORT
            for worker in self.workers.values():
                self._tell(worker, verdict)
            self.round_open = False

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            os.close(worker.requests)
            os.close(worker.votes)
            code = os.waitstatus_to_exitcode(status)
            if code != 0 and self.result == 0:
                self.result = code if code > 0 else 1
                self._send_signal(signal.SIGTERM)

    def _tell(self, worker: _Worker, message: bytes) -> None:
        with contextlib.suppress(OSError):  # a worker that just ended: reaped next
            os.write(worker.requests, message)

    def _send_signal(self, number: int) -> None:
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)
