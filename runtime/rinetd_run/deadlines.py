"""Connect and idle timeouts as pure decisions: which links are past their deadline.

The hot path only puts a link in a dict (and takes it out when its connect
ends); a sweep once a second, given the time, says which connects are past
``connect-timeout`` and which links' byte counts have not moved for
``idle-timeout`` seconds.  Both are whole seconds, so a second of slack is what
the settings mean.  ``deadline_timer`` runs the sweep on the event loop and
acts on what it finds; nothing here reads a clock.
"""

from __future__ import annotations

from typing import NamedTuple

from .link import Link

__all__ = ["Deadlines", "Expired"]


class Expired(NamedTuple):
    connects: list[Link]  # connects to give up: logged as a backend that refused
    idle: list[Link]  # links to end as idle


class Deadlines:
    def __init__(self) -> None:
        self.connecting: dict[Link, float] = {}  # link -> when its connect gives up
        self.idle: dict[Link, list[float]] = {}  # link -> [timeout, byte count, since]

    @property
    def watching(self) -> bool:
        return bool(self.connecting or self.idle)

    def connect_started(self, link: Link, timeout: int, now: float) -> None:
        self.connecting[link] = now + timeout

    def connect_ended(self, link: Link) -> None:
        self.connecting.pop(link, None)

    def forget(self, link: Link) -> None:
        """A link that ended: no longer watched for idleness."""
        self.idle.pop(link, None)

    def watch_idle(self, link: Link, timeout: int, now: float) -> None:
        self.idle[link] = [timeout, -1, now]

    def sweep(self, now: float) -> Expired:
        """The links past a deadline at ``now``, no longer watched; links that finished or
        connected meanwhile are let go."""
        expired = Expired([], [])
        for link, deadline in list(self.connecting.items()):
            if link.finished or link.backend is not None:
                del self.connecting[link]
            elif deadline <= now:
                del self.connecting[link]
                expired.connects.append(link)
        for link, watched in list(self.idle.items()):
            if link.finished:
                del self.idle[link]
                continue
            moved = link.bytes_from_client + link.bytes_to_client
            if moved != watched[1]:
                watched[1], watched[2] = moved, now
            elif now - watched[2] >= watched[0]:
                del self.idle[link]
                expired.idle.append(link)
        return expired
