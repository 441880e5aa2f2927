"""``rinetd-run --reload PID --status FILE``: ask the running rinetd-run to reload and
wait for how that reload ended, so a unit's ``ExecReload=`` (and with it
``systemctl reload`` and the role's handler) fails when the new rule set is refused.

Exit codes: 0 the new rule set serves; 1 it was refused and the old rules serve on;
3 no answer (the process is gone, or said nothing within ``--wait`` seconds).
"""

from __future__ import annotations

import os
import signal
import time

from .say import say
from .status import settled
from .status_file import read

__all__ = ["NO_ANSWER", "REFUSED", "TAKEN", "ask_reload"]

TAKEN, REFUSED, NO_ANSWER = 0, 1, 3
_POLL = 0.05  # seconds between looks at the status file


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ask_reload(pid: int, path: str, wait: float) -> int:
    before = read(path)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        say(f"no process {pid} to reload")
        return NO_ANSWER
    except PermissionError:
        say(f"not allowed to signal process {pid}")
        return NO_ANSWER
    deadline = time.monotonic() + wait
    while True:
        outcome = settled(pid, before, read(path))
        if outcome is not None:
            say(f"process {pid}: {outcome.message}")
            return TAKEN if outcome.ok else REFUSED
        if not _alive(pid):
            say(f"process {pid} ended before it answered the reload")
            return NO_ANSWER
        if time.monotonic() >= deadline:
            say(f"process {pid} did not say how the reload ended within {wait:g} s ({path})")
            return NO_ANSWER
        time.sleep(_POLL)
