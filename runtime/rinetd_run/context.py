"""What the protocol objects need from the running server, and nothing more."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .access import AccessRule
from .link import Link
from .logline import Event
from .ruleset import Rule

__all__ = ["Context", "Listening"]


@dataclass
class Context:
    """Shared by every listener: the global access list and the log, swapped on reload."""

    global_access: tuple[AccessRule, ...]
    log: Callable[[Event], None]
    links: set[Link] = field(default_factory=set)

    def track(self, link: Link) -> None:
        self.links.add(link)
        link.on_finish = self.links.discard


@dataclass
class Listening:
    """One listening socket's current rule: replaced on reload, the socket kept."""

    rule: Rule
    context: Context
