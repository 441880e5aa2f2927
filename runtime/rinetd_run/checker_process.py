"""rinetd-run's end of the health checker process (``checker``): started when a rule set
has members to check, told each (re)load's members, read for results from the loop;
started again after it dies (a second later, longer if it dies again soon), stopped
when nothing is left to check and when a stop begins.

The checker is this interpreter running this package (a zipapp's too), isolated from
the environment (``-I``); it inherits stderr and nothing else (listening sockets stay
rinetd-run's alone).  It exits when its stdin ends, so a rinetd-run that is killed
leaves no checker behind.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .say import say

__all__ = ["HealthChecker"]

RESTART = 1.0  # seconds between a checker's death and the next one ...
LONGEST = 64.0  # ... doubled while each lives less than STEADY, up to this
STEADY = 10.0
LINE_LIMIT = 1 << 24  # a line of results is ~100 bytes a result, ten lines a second
# Where the package lies (a folder, or the zipapp itself): the checker imports it there.
_ROOT = str(Path(__file__).resolve().parent.parent)
_START = "import sys; sys.path.insert(0, sys.argv[1]); from rinetd_run.checker import main; main()"

Results = Callable[[list[list[Any]]], None]


class _Lines(asyncio.Protocol):
    """The checker's stdout: each whole line's results handed on; the end said."""

    def __init__(self, take: Results, ended: asyncio.Future[None]) -> None:
        self.take = take
        self.ended = ended
        self.partial = b""

    def data_received(self, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        if len(self.partial) > LINE_LIMIT:  # never a line of results: not kept
            say("health checker: a line of results too long, dropped")
            self.partial = b""
        for line in lines:
            try:
                results = json.loads(line)["results"]
                self.take(results)
            except (ValueError, KeyError, TypeError) as error:
                say(f"health checker: an unreadable line of results ({error})")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class HealthChecker:
    """The checker process, as long as there are members to check."""

    def __init__(self, take: Results) -> None:
        self.take = take  # called with each batch of results
        self._line: bytes | None = None  # the members now to check, as sent
        self._task: asyncio.Task[None] | None = None
        self._stdin: asyncio.WriteTransport | None = None

    def watch(self, members: list[dict[str, Any]]) -> None:
        """Check these members from now on; none: no checker."""
        if not members:
            self.close()
            return
        self._line = json.dumps({"members": members}, separators=(",", ":")).encode() + b"\n"
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        elif self._stdin is not None:
            self._stdin.write(self._line)

    def close(self) -> None:
        """Stop the checker: its stdin ends, it exits."""
        self._line = None
        if self._stdin is not None:
            self._stdin.close()
            self._stdin = None
        if self._task is not None:
            self._task = None  # the task notices it is no longer the current one

    async def _run(self) -> None:
        this = asyncio.current_task()
        loop = asyncio.get_running_loop()
        wait = RESTART
        while self._task is this and self._line is not None:
            started = loop.time()
            how = await self._serve()
            if self._task is not this:
                return  # stopped on purpose
            # One that cannot run (a broken install) is not started again every second.
            wait = RESTART if loop.time() - started >= STEADY else wait
            # Said after the wait, if still wanted: a signal to the whole unit (a stop)
            # may have ended it a moment before rinetd-run's own stop closes it.
            await asyncio.sleep(wait)
            if self._task is not this:
                return
            say(f"the health checker {how}; starting another (after {wait:g} s)")
            wait = min(wait * 2, LONGEST)

    async def _serve(self) -> str:
        """Run one checker until it ends; how it ended."""
        loop = asyncio.get_running_loop()
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _START, _ROOT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        except OSError as error:
            return f"could not start ({error})"
        assert process.stdin is not None and process.stdout is not None
        ended: asyncio.Future[None] = loop.create_future()
        stdin: asyncio.WriteTransport | None = None
        try:
            stdin, _ = await loop.connect_write_pipe(asyncio.Protocol, process.stdin)
            await loop.connect_read_pipe(lambda: _Lines(self.take, ended), process.stdout)
            if self._task is asyncio.current_task() and self._line is not None:
                self._stdin = stdin
                stdin.write(self._line)
            else:
                stdin.close()  # closed meanwhile
            await ended
            for _ in range(40):  # its stdout has ended: it is on its way out
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                process.kill()
                process.wait()
        finally:
            if stdin is not None:
                stdin.close()
            if self._stdin is stdin:
                self._stdin = None
        code = process.returncode
        return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
