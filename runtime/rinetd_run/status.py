"""The status file (``--status FILE``): what the process that takes SIGHUP last did with
a reload, so that ``rinetd-run --reload`` (a unit's ``ExecReload=``) can wait for the
outcome of the reload it asked for and say it.

What the file holds and when a reload asked for has ended, decided without I/O;
``status_file`` reads and writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["MAX_BYTES", "Outcome", "Status", "decode", "encode", "settled"]

# The file is small and written by us; anything bigger is not ours.
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    """How one reload ended: taken or refused, and the line that said so."""

    ok: bool
    message: str


@dataclass(frozen=True)
class Status:
    """What the file says: whose it is, how many reloads began and ended, and how the
    last one ended (at start: ``ok`` and the start message)."""

    pid: int
    began: int
    ended: int
    ok: bool
    message: str


def encode(status: Status) -> bytes:
    fields = {
        "pid": status.pid,
        "began": status.began,
        "ended": status.ended,
        "ok": status.ok,
        "message": status.message,
    }
    return json.dumps(fields, sort_keys=True).encode() + b"\n"


def decode(data: bytes) -> Status | None:
    """The status in ``data``, or None when it is not a status file of ours."""
    try:
        fields = json.loads(data)
    except ValueError:
        return None
    if not isinstance(fields, dict) or set(fields) != {"pid", "began", "ended", "ok", "message"}:
        return None
    counts = [fields["pid"], fields["began"], fields["ended"]]
    if not all(type(count) is int and count >= 0 for count in counts):
        return None
    if type(fields["ok"]) is not bool or not isinstance(fields["message"], str):
        return None
    return Status(fields["pid"], fields["began"], fields["ended"], fields["ok"], fields["message"])


def settled(pid: int, before: Status | None, now: Status | None) -> Outcome | None:
    """The outcome of the reload asked of ``pid`` after ``before`` was read, once ``now``
    shows it ended; None while it has not.

    Reloads run one at a time and a SIGHUP that comes during one is one more after it,
    so the first reload to begin after the request covers it: its number is above
    every reload that had begun when the file was read.  A file of another process
    (stale, or not yet written by a process still starting) counts as none begun."""
    if now is None or now.pid != pid:
        return None
    begun = before.began if before is not None and before.pid == pid else 0
    if now.ended > begun:
        return Outcome(now.ok, now.message)
    return None
