"""What listeners and links need from the running server, and nothing more: the
global access list, the log, the poller, the descriptor budget and its counts, the
process's connection limit, the timeouts, and each listening socket's current rule
with its options and limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import logline
from .access import verdict
from .balance import MemberState, PoolRoute, PoolTry
from .budget import Budget
from .deadline_timer import DeadlineTimer
from .limits import RuleLimits, client_key
from .link import Link
from .logline import Event
from .names import Names
from .poller import Poller
from .pools import PoolMembers
from .ruleset import AccessRule, Effective, Rule
from .say import say

__all__ = ["Binding", "Context"]


@dataclass
class Context:
    """Shared by every listener: the global access list and the log, swapped on reload,
    and the poller of every TCP socket."""

    global_access: tuple[AccessRule, ...]
    log: Callable[[Event], None]
    poller: Poller
    budget: Budget
    deadlines: DeadlineTimer
    names: Names
    pools: PoolMembers
    max_connections: int = 0  # TCP connections of the process; 0: the budget only
    links: set[Link] = field(default_factory=set)  # TCP links and UDP sessions
    udp_sessions: int = 0
    _said: set[str] = field(default_factory=set)

    @property
    def tcp_links(self) -> int:
        return len(self.links) - self.udp_sessions

    def tcp_may_accept(self) -> bool:
        tcp_links = self.tcp_links
        if self.max_connections and tcp_links >= self.max_connections:
            self.say_once(
                "max-connections",
                f"max-connections {self.max_connections} reached: TCP accepts pause "
                "(clients wait in the backlog) until connections end",
            )
            return False
        self._said.discard("max-connections")
        allowed = self.budget.tcp_may_accept(tcp_links, self.udp_sessions)
        return self._allowed(allowed, "tcp", "TCP accepts pause (clients wait in the backlog)")

    def udp_may_open(self) -> bool:
        allowed = self.budget.udp_may_open(self.tcp_links, self.udp_sessions)
        what = "new UDP sessions end their rule's least recently used one"
        return self._allowed(allowed, "udp", what)

    def _allowed(self, allowed: bool, kind: str, what: str) -> bool:
        """Say once when a kind of connection meets the budget, again after it had room."""
        if allowed:
            self._said.discard(kind)
        else:
            budget = self.budget
            self.say_once(
                kind,
                f"file descriptors: {budget.limit} allowed, {budget.reserve} kept "
                f"in reserve; {what} until some are free",
            )
        return allowed

    def say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            say(message)

    def admit(self, binding: Binding, client: str, port: int = 0) -> Link | None:
        """A link for ``client`` on the binding's rule if access control (reference
        section 2) and the rule's limits let it in; else None, with the one log line
        that says why."""
        rule = binding.rule
        link = Link(rule, client, self.log, port)
        found = verdict(self.global_access, rule.access, client)
        if found != "allowed":
            self.log(link.event(logline.DENIED if found == "denied" else logline.NOT_ALLOWED))
            return None
        if binding.counting:
            if binding.kernel_limited:
                # Allowed, yet not DNAT'd: the table's count of the rule's connections
                # refused it (every other client of the rule is forwarded by the kernel).
                self.log(link.event(logline.LIMIT_EXCEEDED))
                return None
            options, limits = binding.options, binding.limits
            key = client_key(client)
            if not limits.admits(key, options.max_connections, options.max_connections_per_client):
                self.log(link.event(logline.LIMIT_EXCEEDED))
                return None
            limits.add(key)
        route = binding.route
        if route is not None:
            chosen = route.choose(client)
            if not isinstance(chosen, MemberState):  # every member left is full
                if binding.counting:
                    binding.limits.remove(client_key(client))
                self.log(link.event(logline.LIMIT_EXCEEDED))
                return None
            link.pool = PoolTry(route, chosen, client)
            link.rule = route.rule_for(chosen)
        self.links.add(link)
        link.on_finish = binding.ended
        return link


@dataclass
class Binding:
    """The rule a listening socket serves now, with its options: replaced on reload, the
    socket and the counts of what it holds open kept."""

    rule: Rule
    context: Context
    options: Effective
    limits: RuleLimits = field(default_factory=RuleLimits)
    route: PoolRoute | None = None  # a pool rule's way to its members
    counting: bool = field(init=False, default=False)  # a TCP rule with a limit
    # dataplane kernel counts this rule's connections: a client reaching the listener
    # was refused by the table's limits.
    kernel_limited: bool = field(init=False, default=False)
    ended: Callable[[Link], None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.ended = self._ended  # one bound method for every link: it marks them too
        self.limit(self.options)

    def limit(self, options: Effective) -> None:
        """Take ``options`` (at open and on reload).  A TCP rule that gains a limit counts
        what it already holds open first (its links are those ``ended`` ends), so a
        limit a reload brings is not exceeded; a UDP rule has no connection limits
        (rinetdc warns of them, W111)."""
        self.options = options
        counting = self.rule.bind.protocol == "tcp" and bool(
            options.max_connections or options.max_connections_per_client
        )
        if counting and not self.counting:
            self.limits = RuleLimits()
            for link in self.context.links:
                if link.on_finish == self.ended:
                    self.limits.add(client_key(link.client_address))
        self.counting = counting

    def _ended(self, link: Link) -> None:
        """A link of this binding ended: forgotten by everything that counted or watched
        it, at once (a finished link kept until the next tick would outlive the young GC
        generations, and cost a full collection later)."""
        context = self.context
        context.links.discard(link)
        context.deadlines.forget(link)
        if link.pool is not None:
            link.pool.ended()
        if self.counting:
            self.limits.remove(client_key(link.client_address))
