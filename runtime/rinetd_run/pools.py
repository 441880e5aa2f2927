"""The pools' members at run time: their states kept across reloads, their active health
checks (a TCP connect each interval), what a member's change of state says, and the
routes of the pool rules (``balance.PoolRoute``) made from them.

The choices are ``balance``'s (pure); this module owns the states and the checks' sockets.
A pool's checks follow the health options of the first rule (in file order) that
reaches it over TCP; a pool reached over UDP only has passive marking alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .balance import MemberState, PoolRoute, after_check
from .counters import MemberRow
from .names import getaddrinfo
from .ruleset import Effective, Member, Rule, RuleSet, effective
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


@dataclass(frozen=True, slots=True)
class _Checks:
    """How a pool is checked: from its first TCP rule's options."""

    interval: int
    timeout: int
    rise: int
    fall: int
    send: str | None = None
    expect: str | None = None


class PoolMembers:
    """Every pool member's state, the active checks, and the routes of the pool rules."""

    def __init__(self, note: Callable[[str], None] | None = None) -> None:
        self.states: dict[StateKey, MemberState] = {}
        self._checks: dict[StateKey, tuple[_Checks, asyncio.Task[None]]] = {}
        # A member's name looked up again, by name: one lookup at a time whatever the
        # checks' pace (a name server that never answers holds one thread, not one a check).
        self._lookups: dict[str, asyncio.Future[list[Any]]] = {}
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
        # Members start at random points of the interval: 1,000 of them check in a steady
        # trickle, never in a burst of 1,000 connects that would hold up forwarding.
        await asyncio.sleep(random.uniform(0, checks.interval))
        while True:
            if state.member.address is None:
                await self._look_up(state, checks.timeout)
            passed, why = await _check(state.member, checks)
            if passed:
                state.checks_passed += 1
            else:
                state.checks_failed += 1
            self.counted(state, after_check(state, passed, checks.rise, checks.fall), why)
            await asyncio.sleep(checks.interval)

    async def _look_up(self, state: MemberState, timeout: int) -> None:
        """A member whose name did not resolve: look it up again before its check, and
        take the first address found (as a load would)."""
        member = state.member
        lookup = self._lookups.get(member.host)
        if lookup is None:
            lookup = getaddrinfo(asyncio.get_running_loop(), member.host)
            self._lookups[member.host] = lookup
            lookup.add_done_callback(functools.partial(self._looked_up, member.host))
        try:
            async with asyncio.timeout(timeout):
                found = await asyncio.shield(lookup)  # the lookup outlives a late check
        except (TimeoutError, OSError, UnicodeError):
            return
        if found and state.member is member:  # a reload meanwhile brought its own
            state.take(replace(member, address=str(found[0][4][0])))

    def _looked_up(self, host: str, lookup: asyncio.Future[list[Any]]) -> None:
        del self._lookups[host]
        if not lookup.cancelled():
            lookup.exception()  # taken here: the check that waited may have given up

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
            options.health_send,
            options.health_expect,
        )
    return found


async def _check(member: Member, checks: _Checks) -> tuple[bool, str]:
    """One TCP connect to the member within the timeout; with health-send, the text sent;
    with health-expect, the answer's first bytes held against it; then closed."""
    address = member.address
    if address is None:
        return False, f"{member.host} does not resolve"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + checks.timeout
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    try:
        # The connect by hand, not loop.sock_connect: a check is mostly a refused or an
        # accepted connect, and sock_connect raised and caught two exceptions for each
        # (a fifth of a check's cost, with 1,000 members checked every few seconds).
        status: int | None = sock.connect_ex((address, member.port))
        if status == errno.EINPROGRESS:
            status = await _connected(loop, sock, deadline)
        if status is None:
            return False, f"check: no answer in {checks.timeout} s"
        if status:
            return False, f"check: {os.strerror(status)}"
        if not checks.send and not checks.expect:
            return True, "check passed"
        async with asyncio.timeout_at(deadline):  # no task of its own, as wait_for makes
            return await _converse(loop, sock, checks)
    except TimeoutError:
        return False, f"check: no answer in {checks.timeout} s"
    except OSError as error:
        return False, f"check: {error.strerror or error}"
    finally:
        with contextlib.suppress(OSError):
            sock.close()


async def _connected(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float
) -> int | None:
    """A connect under way: its error number once the socket is writable (0 when it
    connected), or None at the deadline."""
    done: asyncio.Future[bool] = loop.create_future()

    def settle(connected: bool) -> None:
        if not done.done():
            done.set_result(connected)

    fd = sock.fileno()
    loop.add_writer(fd, settle, True)
    timer = loop.call_at(deadline, settle, False)
    try:
        if not await done:
            return None
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    finally:
        timer.cancel()
        loop.remove_writer(fd)


async def _converse(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, checks: _Checks
) -> tuple[bool, str]:
    if checks.send:
        await loop.sock_sendall(sock, checks.send.encode("ascii"))
    if checks.expect:
        wanted = checks.expect.encode("ascii")
        answer = b""
        while len(answer) < len(wanted):
            data = await loop.sock_recv(sock, len(wanted) - len(answer))
            if not data:
                break
            answer += data
        if answer != wanted:
            shown = answer.decode("ascii", "replace").encode("unicode_escape").decode()
            return False, f"check: the answer began {shown[:40]!r}, not the expected text"
    return True, "check passed"
