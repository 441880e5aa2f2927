"""The pools' members at run time: their states kept across reloads, the results of
their active health checks counted, what a member's change of state says, and the
routes of the pool rules (``balance.PoolRoute``) made from them.

The choices are ``balance``'s (pure); the checks run in a process of their own
(``checker``), off the forwarding loop: this module tells it the members at each
(re)load and counts what it answers.  A pool's checks follow the health options of
the first rule (in file order) that reaches it over TCP; a pool reached over UDP only
has passive marking alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from .balance import MemberState, PoolRoute, after_check
from .checker_process import HealthChecker
from .counters import MemberRow
from .health import Checks
from .names import Names
from .ruleset import Effective, Rule, RuleSet, effective
from .say import say

__all__ = ["MemberStates", "PoolMembers", "member_line"]

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


class PoolMembers:
    """Every pool member's state, the active checks, and the routes of the pool rules."""

    def __init__(self, names: Names, note: Callable[[str], None] | None = None) -> None:
        self.states: dict[StateKey, MemberState] = {}
        self._wanted: dict[str, _Wanted] = {}  # by pool, how its members are checked
        self._checker: HealthChecker | None = None
        self._closed = False  # a stop has begun: no checker any more
        self.names = names  # dns-refresh's addresses, which the checks follow
        names.on_change.append(self._send)
        self.note = note  # writes a line to a logjson log; None for other formats

    # -- reloads ----------------------------------------------------------------

    def states_for(self, ruleset: RuleSet) -> dict[StateKey, MemberState]:
        """The states ``ruleset``'s members would have: a kept member's own (its health
        and counts), a new member's fresh one.  Nothing changes until ``commit``."""
        states: dict[StateKey, MemberState] = {}
        for pool in ruleset.pools:
            for member in pool.members:
                key = (pool.name, member.key)
                states[key] = self.states.get(key) or MemberState(pool.name, member)
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
        for pool in ruleset.pools:
            for member in pool.members:
                state = states[(pool.name, member.key)]
                unresolved = state.member.address is None
                state.take(member)
                if member.address is None and state.up:
                    state.up = False
                    self.counted(state, True, f"{member.host} does not resolve")
                elif member.address is not None and unresolved and not state.up:
                    # Down for its name alone: a pool without checks has no other way up.
                    state.up = True
                    self.counted(state, True, f"{member.host} resolves")
        self.states = states
        self._wanted = _checks_of(ruleset)
        self._send()

    def _send(self) -> None:
        """Tell the checker the members to check now, each at the address its clients
        are sent to (dns-refresh's first, once a lookup has found it)."""
        if self._closed:
            return
        members = [
            {
                "pool": pool,
                "host": state.member.host,
                "port": state.member.port,
                "address": self._address(state, wanted.refresh),
                "checks": asdict(wanted.checks),
            }
            for (pool, _key), state in self.states.items()
            if (wanted := self._wanted.get(pool)) is not None and wanted.checks.interval
        ]
        if members and self._checker is None:
            self._checker = HealthChecker(self._checked)
        if self._checker is not None:
            self._checker.watch(members)

    def _address(self, state: MemberState, refresh: int) -> str | None:
        address = state.member.address
        if address is None:
            return None
        return self.names.of(state.member.host, refresh, address)[0]

    def close(self) -> None:
        self._closed = True
        if self._checker is not None:
            self._checker.close()

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

    def _checked(self, results: list[list[Any]]) -> None:
        """The checker's results: each counted against its member's rise and fall."""
        for pool, host, port, passed, why, address in results:
            state = self.states.get((pool, (host, port)))
            wanted = self._wanted.get(pool)
            if state is None or wanted is None:
                continue  # a member or a pool a reload removed meanwhile
            if address is not None and state.member.address is None:
                state.take(replace(state.member, address=address))  # its name resolved
            if passed:
                state.checks_passed += 1
            else:
                state.checks_failed += 1
            self.counted(state, after_check(state, passed, wanted.rise, wanted.fall), why)

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


@dataclass(frozen=True, slots=True)
class _Wanted:
    """How a pool's members are checked, how many checks in a row move them, and the
    dns-refresh their names follow: the options of the pool's first TCP rule."""

    checks: Checks
    rise: int
    fall: int
    refresh: int


def _checks_of(ruleset: RuleSet) -> dict[str, _Wanted]:
    found: dict[str, _Wanted] = {}
    for rule in ruleset.rules:
        if rule.pool is None or rule.pool in found or rule.connect.protocol != "tcp":
            continue
        options = effective(ruleset, rule)
        checks = Checks(
            options.health_interval,
            options.health_timeout,
            options.health_send,
            options.health_expect,
        )
        found[rule.pool] = _Wanted(
            checks, options.health_rise, options.health_fall, options.dns_refresh
        )
    return found
