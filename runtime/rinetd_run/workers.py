"""``--workers N``: N forwarding processes that share each listening port (SO_REUSEPORT).

The kernel spreads new connections (and UDP clients, by address) over the
workers. The parent forwards nothing itself: it writes the pid file, passes
SIGTERM and SIGINT on to every worker, and exits when they have, stopping the
others if one fails.

A reload applies in every worker or in none.  SIGHUP goes to the parent, which
runs one round at a time over a pair of pipes per worker: it asks every worker
to prepare the reload (read, check, bind: all that can fail), each answers
whether it can, and the parent tells all of them to take it only if every one
can, else to keep the old rules; each says when it is done with the round.
SIGHUPs during a round are one more round after it.  The parent writes the status
file (``--status``): a round has begun, and once every worker is done, how it ended.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from .notify import notify
from .pidfile import pidfile
from .status import Outcome
from .status_file import Announcer

__all__ = [
    "ABORT",
    "COMMIT",
    "DONE",
    "NO",
    "PREPARE",
    "STARTED",
    "YES",
    "Channel",
    "supervise",
    "verdict",
]

PREPARE, COMMIT, ABORT = b"r", b"c", b"a"  # parent -> worker
YES, NO = b"y", b"n"  # worker -> parent: the new rule set can be applied here, or not
DONE = b"d"  # worker -> parent: the verdict is carried out here
STARTED = b"s"  # worker -> parent: forwarding (every worker: the parent tells systemd)


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
    done: bool = False
    started: bool = False


def supervise(
    count: int, work: Callable[[int, Channel], int], path_of_pid: str | None, announcer: Announcer
) -> int:
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
    return _Supervisor(workers, announcer).run(path_of_pid)


def verdict(votes: dict[int, bytes]) -> Outcome:
    """The round's outcome from each worker's vote, by pid."""
    if not votes:
        return Outcome(False, "reload failed: no worker is left")
    refusing = sorted(pid for pid, vote in votes.items() if vote != YES)
    if not refusing:
        return Outcome(True, f"reloaded: every worker ({len(votes)}) took the new rule set")
    pids = ", ".join(map(str, refusing))
    return Outcome(
        False,
        f"reload failed, keeping the old rules: worker pid {pids} could not apply it "
        "(its own message says why)",
    )


class _Supervisor:
    def __init__(self, workers: dict[int, _Worker], announcer: Announcer) -> None:
        self.workers = workers
        self.announcer = announcer
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        self.reload_wanted = False
        self.round_open = False
        self.outcome: Outcome | None = None  # the round's verdict, until all are done
        self.ready = False  # systemd told that every worker forwards
        self.result = 0

    def run(self, path_of_pid: str | None) -> int:
        def forward(number: int, _frame: FrameType | None) -> None:
            notify("STOPPING=1")
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
            self.announcer.began()
            for worker in self.workers.values():
                worker.vote, worker.done = b"", False
                self._tell(worker, PREPARE)
        votes = {worker.votes: worker for worker in self.workers.values()}
        # A short timeout: a worker's end is seen by polling waitpid, not by a signal.
        readable, _, _ = select.select([self.wake_read, *votes], [], [], 0.2)
        for fd in readable:
            data = os.read(fd, 64)
            if fd in votes:
                for message in (data[n : n + 1] for n in range(len(data))):
                    if message == DONE:
                        votes[fd].done = True
                    elif message == STARTED:
                        votes[fd].started = True
                    else:
                        votes[fd].vote = message
        self._reap()
        workers = self.workers.values()
        if not self.ready and workers and all(worker.started for worker in workers):
            self.ready = True
            notify("READY=1", f"STATUS=forwarding in {len(self.workers)} workers")
        if self.round_open and self.outcome is None and all(w.vote for w in workers):
            self.outcome = verdict({pid: worker.vote for pid, worker in self.workers.items()})
            for worker in workers:
                self._tell(worker, COMMIT if self.outcome.ok else ABORT)
        if self.outcome is not None and all(worker.done for worker in workers):
            self.announcer.ended(self.outcome)
            self.round_open, self.outcome = False, None

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
