"""The ``rinetd-run`` command: load a compiled rule set and forward until told to stop.

Runs in the foreground (systemd ``Type=notify``: READY=1 once forwarding; or
``Type=simple``).  Exit codes: 0 after
SIGTERM/SIGINT, 1 when a socket, the log or the status file cannot be opened at
start, 2 when the rule set is refused (bad JSON, unknown version, digest
mismatch, not the schema).  ``rinetd-run --reload PID --status FILE`` asks a
running one to reload and waits for the outcome (see ``ask_reload``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import resource
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from . import __version__
from .ask_reload import ask_reload
from .document import load
from .kernel_plane import KernelError, KernelPlane
from .lookup import first_address
from .notify import notify
from .pidfile import pidfile
from .ruleset import RuleSet, RuleSetError, effective, resolve
from .say import say
from .server import Agreement, BindError, Server
from .status import Outcome
from .status_file import Announcer, StatusFile
from .workers import COMMIT, DONE, NO, PREPARE, STARTED, YES, Channel, supervise

__all__ = ["main"]


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rinetd-run", description="Forward TCP and UDP from a rule set made by rinetdc."
    )
    parser.add_argument("rules", metavar="RULES.json", nargs="?", help="the compiled rule set")
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long open connections may finish (default: 30)",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop; uvloop only if it is installed (default: asyncio)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="forwarding processes sharing the ports through SO_REUSEPORT (default: 1)",
    )
    parser.add_argument(
        "--dataplane",
        choices=("user", "kernel"),
        help="over the rule set's dataplane statement: kernel has nftables forward each "
        "rule it can (see rinetdc check --explain), user forwards every rule here",
    )
    parser.add_argument(
        "--kernel-cleanup",
        action="store_true",
        help="after a run that did not stop: put IP forwarding back as the kernel data "
        "plane's table says, delete table inet rinetd_run, and exit (a unit's ExecStopPost)",
    )
    parser.add_argument(
        "--status",
        metavar="FILE",
        help="write how each reload ended to FILE, for --reload to wait on",
    )
    parser.add_argument(
        "--reload",
        type=int,
        metavar="PID",
        help="ask the rinetd-run of process PID (started with --status FILE) to reload and "
        "wait for the outcome: exit 0 taken, 1 refused (the old rules serve), 3 no answer",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="with --reload, how long to wait for the outcome (default: 60)",
    )
    parser.add_argument("--version", action="version", version=f"rinetd-run {__version__}")
    arguments = parser.parse_args(argv)
    if arguments.kernel_cleanup:
        if arguments.rules is not None or arguments.reload is not None:
            parser.error("--kernel-cleanup takes nothing else")
        return arguments
    if arguments.reload is not None:
        if arguments.rules is not None or arguments.status is None:
            parser.error("--reload PID takes --status FILE and no rule set")
        if arguments.reload <= 0 or not arguments.wait > 0:
            parser.error("--reload needs a process number above 0 and --wait above 0")
    elif arguments.rules is None:
        parser.error("the following arguments are required: RULES.json")
    return arguments


async def _serve(
    path: str,
    ruleset: RuleSet,
    grace: float,
    workers: int,
    index: int,
    channel: Channel | None,
    announcer: Announcer,
    dataplane: str | None,
) -> int:
    try:
        server = Server(path, ruleset, workers > 1, index, dataplane)
    except OSError as error:
        say(f"cannot open log {ruleset.logfile}: {error.strerror}")
        return 1
    try:
        await server.start()
    except BindError as error:
        say(str(error))
        server.logger.close()
        return 1
    path_of_pid = ruleset.pidfile.path if ruleset.pidfile and workers == 1 else None
    with pidfile(path_of_pid):  # with --workers, the supervisor's
        await _forward(server, path, len(ruleset.rules), grace, channel, announcer)
    return 0


class Report(Protocol):
    """Who hears of each reload: the status file, or a worker's parent."""

    def began(self) -> None: ...

    def ended(self, outcome: Outcome) -> None: ...


async def _reloads(
    server: Server,
    wanted: asyncio.Event,
    stop: asyncio.Event,
    agree: Agreement | None,
    report: Report,
) -> None:
    """Reload once per request, one reload at a time: SIGHUPs that arrive during a reload
    are one more reload after it, however many they are."""
    while not stop.is_set():
        await wanted.wait()
        wanted.clear()
        if not stop.is_set():
            report.began()
            report.ended(await server.reload(agree))


class _Parent:
    """A worker's side of the parent's reload rounds (see ``workers``)."""

    def __init__(self, channel: Channel, wanted: asyncio.Event) -> None:
        self.channel, self.wanted = channel, wanted
        self.verdict: asyncio.Future[bytes] | None = None
        os.set_blocking(channel.inbox, False)
        asyncio.get_running_loop().add_reader(channel.inbox, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.channel.inbox, 64)
        except BlockingIOError:
            return
        if not data:  # the parent is gone
            asyncio.get_running_loop().remove_reader(self.channel.inbox)
            return
        for message in (data[n : n + 1] for n in range(len(data))):
            if message == PREPARE:
                self.wanted.set()
            elif self.verdict is not None and not self.verdict.done():
                self.verdict.set_result(message)

    def began(self) -> None:
        pass  # the parent began the round

    def ended(self, _outcome: Outcome) -> None:
        with contextlib.suppress(OSError):
            os.write(self.channel.outbox, DONE)

    async def agree(self, ready: bool) -> bool:
        """Tell the parent whether this worker can apply the new rule set; True when
        every worker can (no answer within VERDICT_WAIT: keep the old rules)."""
        self.verdict = asyncio.get_running_loop().create_future()
        with contextlib.suppress(OSError):
            os.write(self.channel.outbox, YES if ready else NO)
        try:
            return await asyncio.wait_for(self.verdict, VERDICT_WAIT) == COMMIT
        except TimeoutError:
            return False


VERDICT_WAIT = 60.0  # seconds a worker waits for the others to be ready


async def _forward(
    server: Server,
    path: str,
    count: int,
    grace: float,
    channel: Channel | None,
    announcer: Announcer,
) -> None:
    loop = asyncio.get_running_loop()
    stop, wanted = asyncio.Event(), asyncio.Event()
    agree: Agreement | None = None
    report: Report = announcer
    if channel is None:
        loop.add_signal_handler(signal.SIGHUP, wanted.set)
    else:  # reloads come from the parent, in rounds that every worker takes part in
        parent = _Parent(channel, wanted)
        agree, report = parent.agree, parent
        parent_pid = os.getppid()
        loop.add_signal_handler(
            signal.SIGHUP,
            lambda: say(
                f"SIGHUP to a worker does nothing: send it to the parent, pid {parent_pid}"
            ),
        )
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # Signals that came while starting were held back (see main); they arrive now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    say(f"forwarding {count} rules from {path}")
    if channel is None:
        notify("READY=1", f"STATUS=forwarding {count} rules")
    else:
        with contextlib.suppress(OSError):
            os.write(channel.outbox, STARTED)
    reloading = loop.create_task(_reloads(server, wanted, stop, agree, report))
    await stop.wait()
    if channel is None:
        notify("STOPPING=1")
    wanted.set()  # lets the reload loop see the stop, after a reload under way
    await reloading
    await server.stop(grace)


def _kernel_cleanup() -> int:
    try:
        removed = KernelPlane.cleanup()
    except KernelError as error:
        say(f"cannot remove the kernel data plane's table: {error}")
        return 1
    if removed:
        say("removed table inet rinetd_run left by a run that did not stop; forwarding put back")
    return 0


def _raise_file_limit() -> None:
    """Every connection takes two descriptors: allow as many as the hard limit lets us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# Held back from the first line of main until forwarding starts: a SIGHUP or SIGTERM
# that comes while the rules are read and bound must not kill the process (a first
# install may send restart and reload back to back); it is acted on once ready.
_HELD = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}


_WILDCARDS = ("0.0.0.0", "::")


def _metrics_collision(ruleset: RuleSet, workers: int) -> str | None:
    """With --workers N, worker n serves metrics on PORT + n: a rule bound there would
    make that worker fail to start, which the compiler cannot know of."""
    if ruleset.metrics is None or workers < 2:
        return None
    endpoint = ruleset.metrics.endpoint
    address = endpoint.address or endpoint.host
    for rule in ruleset.rules:
        protocol, bind, port = rule.listener
        taken = endpoint.port < port < endpoint.port + workers
        overlapping = bind == address or bind in _WILDCARDS or address in _WILDCARDS
        if protocol == "tcp" and taken and overlapping:
            return (
                f"--workers {workers}: worker {port - endpoint.port} would serve metrics on "
                f"{address} {port}, which the rule of line {rule.line} binds; move the "
                "metrics port or that rule (worker N serves metrics on PORT + N)"
            )
    return None


def _limited(ruleset: RuleSet) -> bool:
    """Whether the process or some TCP rule has a connection limit."""
    return bool(ruleset.max_connections) or any(
        options.max_connections or options.max_connections_per_client
        for rule in ruleset.rules
        if rule.bind.protocol == "tcp"
        for options in [effective(ruleset, rule)]
    )


def main(argv: Sequence[str] | None = None) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    arguments = _arguments(argv)
    if arguments.reload is not None:
        sys.exit(ask_reload(arguments.reload, arguments.status, arguments.wait))
    if arguments.kernel_cleanup:
        sys.exit(_kernel_cleanup())
    _raise_file_limit()
    try:
        ruleset = resolve(load(arguments.rules), first_address)
    except RuleSetError as error:
        say(str(error))
        sys.exit(2)
    runner: Callable[[Coroutine[Any, Any, int]], int] = asyncio.run
    if arguments.loop == "uvloop":
        try:
            runner = importlib.import_module("uvloop").run
        except ImportError:
            say("--loop uvloop asked for, but uvloop is not installed")
            sys.exit(2)
    workers = max(1, arguments.workers)
    collision = _metrics_collision(ruleset, workers)
    if collision is not None:
        say(collision)
        sys.exit(2)
    if workers > 1 and _limited(ruleset):
        say(
            f"--workers {workers}: max-connections (the process's and the rules') and "
            "max-connections-per-client count in each worker, so up to "
            f"{workers} times a limit is admitted; run one worker where a limit must hold"
        )

    # Written by the process that takes SIGHUP: the only one, or the supervisor.
    status = StatusFile(arguments.status)
    try:
        status.started(f"serving {arguments.rules}")
    except OSError as error:
        say(f"cannot write the status file {arguments.status}: {error.strerror}")
        sys.exit(1)

    announcer = Announcer(status)

    def work(index: int, channel: Channel | None = None) -> int:
        return runner(
            _serve(
                arguments.rules,
                ruleset,
                arguments.grace,
                workers,
                index,
                channel,
                announcer,
                arguments.dataplane,
            )
        )

    try:
        code = (
            work(0)
            if workers == 1
            else supervise(
                workers, work, ruleset.pidfile.path if ruleset.pidfile else None, announcer
            )
        )
    finally:
        status.remove()
    sys.exit(code)
