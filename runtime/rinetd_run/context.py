"""What listeners and links need from the running server, and nothing more: the
global access list, the log, the poller, and each listening socket's current rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import logline
from .access import verdict
from .link import Link
from .logline import Event
from .poller import Poller
from .ruleset import AccessRule, Rule

__all__ = ["Binding", "Context"]


@dataclass
class Context:
    """Shared by every listener: the global access list and the log, swapped on reload,
    and the poller of every TCP socket."""

    global_access: tuple[AccessRule, ...]
    log: Callable[[Event], None]
    poller: Poller
    links: set[Link] = field(default_factory=set)

    def admit(self, rule: Rule, client: str) -> Link | None:
        """A link for ``client`` on ``rule`` if access control lets it in (reference
        section 2); else None, with the one log line that says why."""
        link = Link(rule, client, self.log)
        found = verdict(self.global_access, rule.access, client)
        if found != "allowed":
            self.log(link.event(logline.DENIED if found == "denied" else logline.NOT_ALLOWED))
            return None
        self.links.add(link)
        link.on_finish = self.links.discard
        return link


@dataclass
class Binding:
    """The rule a listening socket serves now: replaced on reload, the socket kept."""

    rule: Rule
    context: Context
