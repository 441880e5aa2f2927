"""Which member of a pool takes a new connection, and how a member's health moves: pure
decisions over the members' states, no I/O (the pool runtime in ``pools`` does that).
``PoolRoute`` is a pool rule's way to its members, ``PoolTry`` one connection's way
through them (the member it holds, those it tried).

A member is a candidate while it is up, not yet tried for this connection and not a
backup; backups are candidates only when no other member is.  When every member is
down the members are tried all the same (a check can be wrong; the client would
otherwise be refused for sure), but for those whose name did not resolve.  Among
the candidates, full members (max-connections) are skipped; candidates that are all
full make the connection ``FULL`` (logged limit-exceeded).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Collection, Sequence
from dataclasses import replace

from .ruleset import Effective, Endpoint, Member, Rule

__all__ = ["FULL", "Balancer", "MemberState", "PoolRoute", "PoolTry", "after_check"]


class MemberState:
    """One member's health and counts: shared by every rule of its pool, kept across a
    reload that keeps the member.  Its weight, backup and limit are copied out of the
    member (``take``): they are read on every connection."""

    __slots__ = (
        "backup",
        "checks_failed",
        "checks_passed",
        "connect_failures",
        "fails",
        "member",
        "most",
        "open",
        "opened",
        "passes",
        "pool",
        "up",
        "weight",
    )

    def __init__(self, pool: str, member: Member) -> None:
        self.pool = pool
        self.take(member)
        self.up = True  # a member serves from the start: checks take it out
        self.passes = 0  # checks (or connects) in a row that passed
        self.fails = 0  # ... that failed
        self.open = 0  # connections and sessions open now
        self.opened = 0
        self.connect_failures = 0
        self.checks_passed = 0
        self.checks_failed = 0

    def take(self, member: Member) -> None:
        """The member as a (re)load writes it: its health and counts stay."""
        self.member = member
        self.weight = member.weight
        self.backup = member.backup
        self.most = member.max_connections

    @property
    def full(self) -> bool:
        return bool(self.most) and self.open >= self.most

    @property
    def load(self) -> float:
        return self.open / self.weight


def after_check(state: MemberState, passed: bool, rise: int, fall: int) -> bool:
    """Count one check or connect; True when it changes the member's up or down."""
    if passed:
        state.fails = 0
        state.passes += 1
        if not state.up and state.passes >= rise:
            state.up = True
            return True
    else:
        state.passes = 0
        state.fails += 1
        if state.up and state.fails >= fall:
            state.up = False
            return True
    return False


class _Full:
    def __repr__(self) -> str:
        return "FULL"


FULL = _Full()  # every candidate is at its max-connections


def _candidates(
    members: Sequence[MemberState], tried: Collection[MemberState]
) -> list[MemberState]:
    untried = [s for s in members if s not in tried] if tried else members
    # Each list only when the one before is empty: the first is the common case.  A
    # member whose name did not resolve is down and has no address to try.
    return (
        [s for s in untried if s.up and not s.backup]
        or [s for s in untried if s.up]
        or [s for s in untried if not s.backup and s.member.address is not None]
        or [s for s in untried if s.member.address is not None]
    )


def _hash(client: str, member: Member) -> float:
    """A number in (0, 1) fixed by the client and the member."""
    text = f"{client}|{member.host}|{member.port}".encode()
    value = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")
    return (value + 1) / (2**64 + 1)


class Balancer:
    """One rule's choice of member: its method, and the state the method keeps."""

    __slots__ = ("_current", "_random", "method", "turn")

    def __init__(self, method: str, seed: int | None = None) -> None:
        self.method = method
        self._current: dict[MemberState, int] = {}  # smooth round robin's weights
        self._random = random.Random(seed)
        self.turn = 0

    def choose(
        self,
        members: Sequence[MemberState],
        client: str,
        tried: Collection[MemberState] = (),
    ) -> MemberState | _Full | None:
        """The member for a new connection from ``client``; None when every member has
        been tried, FULL when those left are full."""
        candidates = _candidates(members, tried)
        if not candidates:
            return None
        free = [s for s in candidates if not s.most or s.open < s.most]
        if not free:
            return FULL
        if len(free) == 1:
            return free[0]
        if self.method == "leastconn":
            return self._least(free)
        if self.method == "random":
            one, two = self._random.choices(free, weights=[s.weight for s in free], k=2)
            return one if one.load <= two.load else two
        if self.method == "source":
            # Weighted rendezvous hashing: a member's going away moves only its clients.
            return max(free, key=lambda s: -s.weight / math.log(_hash(client, s.member)))
        return self._smooth_round_robin(free)

    def _least(self, free: list[MemberState]) -> MemberState:
        """The least loaded for its weight; ties taken in turn, so that equal members at
        rest share the connections."""
        self.turn += 1
        start = self.turn % len(free)
        ordered = free[start:] + free[:start]
        return min(ordered, key=lambda s: s.load)

    def _smooth_round_robin(self, free: list[MemberState]) -> MemberState:
        """nginx's smooth weighted round robin: weights 5, 1, 1 give a a b a c a a, not
        a a a a a b c."""
        current, total = self._current, 0
        best = free[0]
        best_value = -math.inf
        for state in free:
            weight = state.weight
            value = current.get(state, 0) + weight
            current[state] = value
            total += weight
            if value > best_value:
                best, best_value = state, value
        current[best] -= total
        return best


class PoolRoute:
    """One pool rule's way to its members: the members' states, its balancer, the rule
    each member's connections run under (the member in the connect field)."""

    __slots__ = ("_rules", "balancer", "fall", "rise", "rule", "states", "timeout")

    def __init__(self, rule: Rule, states: list[MemberState], options: Effective) -> None:
        self.rule = rule
        self.states = states
        self.balancer = Balancer(options.balance)
        self.rise, self.fall, self.timeout = (
            options.health_rise,
            options.health_fall,
            options.health_timeout,
        )
        self._rules: dict[MemberState, Rule] = {}

    def choose(
        self, client: str, tried: Collection[MemberState] = ()
    ) -> MemberState | object | None:
        return self.balancer.choose(self.states, client, tried)

    def rule_for(self, state: MemberState) -> Rule:
        """The rule a connection to ``state``'s member runs and logs under."""
        found = self._rules.get(state)
        member = state.member
        if found is None or found.connect.address != member.address:
            connect = Endpoint(
                member.host, member.address, member.port, member.service, self.rule.connect.protocol
            )
            found = replace(self.rule, connect=connect)
            self._rules[state] = found
        return found


class PoolTry:
    """A connection's way through its pool: the member it holds now and those tried."""

    __slots__ = ("client", "route", "state", "tried")

    def __init__(self, route: PoolRoute, state: MemberState, client: str) -> None:
        self.client = client
        self.route = route
        self.state = state
        self.tried: list[MemberState] = [state]
        state.open += 1
        state.opened += 1

    def failed(self) -> tuple[bool, MemberState | object | None]:
        """The connect to the member failed: count it (whether that took the member out),
        and move to the next member (the state returned, also taken), or FULL or None
        when none is left."""
        state, route = self.state, self.route
        state.connect_failures += 1
        changed = after_check(state, False, route.rise, route.fall)
        chosen = route.choose(self.client, self.tried)
        if isinstance(chosen, MemberState):
            state.open -= 1
            chosen.open += 1
            chosen.opened += 1
            self.state = chosen
            self.tried.append(chosen)
        return changed, chosen

    def connected(self) -> bool:
        """The member took the connection: whether that brought it back up."""
        return after_check(self.state, True, self.route.rise, self.route.fall)

    def ended(self) -> None:
        self.state.open -= 1
