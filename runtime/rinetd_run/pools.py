"""The pools' members at run time: their states kept across reloads, their active health
checks (a TCP connect each interval), what a member's change of state says, and each
pool rule's route (its balancer and the rule a connection to each member logs).

The choices are ``balance``'s; this module owns the states and the checks' sockets.
A pool's checks follow the health options of the first rule (in file order) that
reaches it over TCP; a pool reached over UDP only has passive marking alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from .balance import FULL, Balancer, MemberState, after_check
from .counters import MemberRow
from .ruleset import Effective, Endpoint, Member, Rule, RuleSet, effective
from .say import say

__all__ = ["FULL", "MemberStates", "PoolMembers", "PoolRoute", "PoolTry", "member_line"]

StateKey = tuple[str, tuple[str, int]]  # pool name, member key
MemberStates = dict[StateKey, MemberState]


def member_line(state: MemberState, up: bool, why: str) -> str:
    """The JSON line a change of state writes to a logjson log."""
    member = state.member
    return json.dumps(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "event": "member-up" if up else "member-down",
            "pool": state.pool,
            "member": member.host,
            "member_port": member.port,
            "why": why,
        },
        separators=(",", ":"),
    )


@dataclass(frozen=True, slots=True)
class _Checks:
    """How a pool is checked: from its first TCP rule's options."""

    interval: int
    timeout: int
    rise: int
    fall: int


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
        self._rules: dict[tuple[str, int], Rule] = {}

    def choose(
        self, client: str, tried: Collection[MemberState] = ()
    ) -> MemberState | object | None:
        return self.balancer.choose(self.states, client, tried)

    def rule_for(self, state: MemberState) -> Rule:
        """The rule a connection to ``state``'s member runs and logs under."""
        member = state.member
        found = self._rules.get(member.key)
        if found is None or found.connect.address != member.address:
            connect = Endpoint(
                member.host, member.address, member.port, member.service, self.rule.connect.protocol
            )
            found = replace(self.rule, connect=connect)
            self._rules[member.key] = found
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

    def failed(self, members: PoolMembers, why: str) -> MemberState | object | None:
        """The connect to the member failed: count it, and move to the next member (the
        state returned, also taken), or FULL or None when none is left."""
        state, route = self.state, self.route
        state.connect_failures += 1
        members.counted(state, after_check(state, False, route.rise, route.fall), why)
        chosen = route.choose(self.client, self.tried)
        if isinstance(chosen, MemberState):
            state.open -= 1
            chosen.open += 1
            chosen.opened += 1
            self.state = chosen
            self.tried.append(chosen)
        return chosen

    def connected(self, members: PoolMembers) -> None:
        state, route = self.state, self.route
        members.counted(state, after_check(state, True, route.rise, route.fall), "connected")

    def ended(self) -> None:
        self.state.open -= 1


class PoolMembers:
    """Every pool member's state, the active checks, and the routes of the pool rules."""

    def __init__(self, note: Callable[[str], None] | None = None) -> None:
        self.states: dict[StateKey, MemberState] = {}
        self._checks: dict[StateKey, tuple[_Checks, asyncio.Task[None]]] = {}
        self._pending: list[tuple[MemberState, Member]] = []
        self.note = note  # writes a line to a logjson log; None for other formats

    # -- reloads ----------------------------------------------------------------

    def states_for(self, ruleset: RuleSet) -> dict[StateKey, MemberState]:
        """The states ``ruleset``'s members would have: a kept member's own (its health
        and counts), a new member's fresh one.  Nothing changes until ``commit``."""
        states: dict[StateKey, MemberState] = {}
        self._pending = []
        for pool in ruleset.pools:
            for member in pool.members:
                key = (pool.name, member.key)
                state = self.states.get(key)
                if state is None:
                    state = MemberState(pool.name, member)
                elif state.member != member:
                    self._pending.append((state, member))
                states[key] = state
        return states

    def route(
        self, rule: Rule, options: Effective, states: dict[StateKey, MemberState]
    ) -> PoolRoute:
        assert rule.pool is not None
        members = [s for (pool, _key), s in states.items() if pool == rule.pool]
        return PoolRoute(rule, members, options)

    def commit(self, ruleset: RuleSet, states: dict[StateKey, MemberState]) -> None:
        """Serve ``states``: kept members take their new options (weight, address), and
        the checks follow; a removed member's open connections finish (its state lives
        on in them) while it gets no new ones."""
        for state, member in self._pending:
            state.member = member
        self._pending = []
        self.states = states
        wanted = _checks_of(ruleset)
        for key, (checks, task) in list(self._checks.items()):
            if key not in states or wanted.get(key[0]) != checks:
                task.cancel()
                del self._checks[key]
        for key, state in states.items():
            check = wanted.get(key[0])
            if check is not None and check.interval and key not in self._checks:
                task = asyncio.get_running_loop().create_task(self._check_every(state, check))
                self._checks[key] = (check, task)

    def close(self) -> None:
        for _checks, task in self._checks.values():
            task.cancel()
        self._checks.clear()

    # -- health -------------------------------------------------------------------

    def counted(self, state: MemberState, changed: bool, why: str) -> None:
        """Say a change of state: one line on stderr, one in a logjson log."""
        if not changed:
            return
        member = state.member
        word = "up" if state.up else "down"
        say(f"pool {state.pool} member {member.host} {member.port} is {word}: {why}")
        if self.note is not None:
            self.note(member_line(state, state.up, why))

    async def _check_every(self, state: MemberState, checks: _Checks) -> None:
        while True:
            await asyncio.sleep(checks.interval)
            passed, why = await _check(state.member, checks.timeout)
            if passed:
                state.checks_passed += 1
            else:
                state.checks_failed += 1
            self.counted(state, after_check(state, passed, checks.rise, checks.fall), why)

    def rows(self) -> list[MemberRow]:
        """Per member, for the metrics page: pool, host, port, up, open, opened, connect
        failures, checks passed and failed."""
        return [
            (
                s.pool,
                s.member.host,
                s.member.port,
                s.up,
                s.open,
                s.opened,
                s.connect_failures,
                s.checks_passed,
                s.checks_failed,
            )
            for s in self.states.values()
        ]


def _checks_of(ruleset: RuleSet) -> dict[str, _Checks]:
    found: dict[str, _Checks] = {}
    for rule in ruleset.rules:
        if rule.pool is None or rule.pool in found or rule.connect.protocol != "tcp":
            continue
        options = effective(ruleset, rule)
        found[rule.pool] = _Checks(
            options.health_interval,
            options.health_timeout,
            options.health_rise,
            options.health_fall,
        )
    return found


async def _check(member: Member, timeout: int) -> tuple[bool, str]:
    """One TCP connect to the member, closed at once."""
    address = member.address
    if address is None:
        return False, f"{member.host} does not resolve"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, (address, member.port)), timeout
        )
    except TimeoutError:
        return False, f"check: no answer in {timeout} s"
    except OSError as error:
        return False, f"check: {error.strerror or error}"
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    return True, "check passed"
