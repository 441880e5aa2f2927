"""The share of ``dataplane kernel`` that one process owns (with ``--workers``, worker 0):
which rules the table holds, loading it, the conntrack log while kernel connections
are logged or counted, and the table following a connect name that dns-refresh finds
at a new address.

Choosing and loading run in the reload thread (``run``), one at a time, reloads and
name changes alike, so the table always ends as the last of them says.  Trouble is a
``KernelError``: the server refuses the start or reload with it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from .conntrack import ConntrackLog
from .kernel_choice import dataplane_of, kernel_rules
from .kernel_log import KernelLog
from .kernel_plane import KernelError, KernelPlane
from .kernel_table import FAMILY, NAME, KernelRule, kernel_rule, read_counters
from .logline import Event
from .name_table import is_name
from .names import Names
from .ruleset import Rule, RuleSet, effective
from .say import say

__all__ = ["KernelSide"]


class KernelSide:
    def __init__(
        self,
        override: str | None,
        names: Names,
        log: Callable[[Event], None],
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
    ) -> None:
        self.override = override  # `--dataplane`, over the rule set's statement
        self.plane = KernelPlane()
        self.kernel_log = KernelLog()  # the rules' numbers in the table, and its flows
        self.conntrack: ConntrackLog | None = None  # while kernel rules are logged
        self.logged = False
        self.loaded: tuple[KernelRule, ...] = ()
        self.ruleset: RuleSet | None = None  # the rule set the table was loaded for
        self._names = names
        self._log = log
        self._run = run
        self._following: set[asyncio.Task[None]] = set()
        names.on_change.append(self.names_changed)

    def dataplane(self, ruleset: RuleSet) -> str:
        return dataplane_of(ruleset, self.override)

    def _resolved_now(self, ruleset: RuleSet, rule: Rule) -> Rule:
        """``rule`` with its connect name's first address as dns-refresh last found it."""
        connect = rule.connect
        if connect.address is None or not is_name(connect.host):
            return rule
        refresh = effective(ruleset, rule).dns_refresh
        first = self._names.of(connect.host, refresh, connect.address)[0]
        return (
            rule
            if first == connect.address
            else replace(rule, connect=replace(connect, address=first))
        )

    def chosen(self, ruleset: RuleSet, follow_names: bool = False) -> tuple[KernelRule, ...]:
        """The rules nftables forwards for ``ruleset``, numbered for the log; with
        ``follow_names``, at the addresses dns-refresh found since it was loaded."""
        if follow_names:
            ruleset = replace(
                ruleset, rules=tuple(self._resolved_now(ruleset, rule) for rule in ruleset.rules)
            )
        chosen = kernel_rules(ruleset, self.dataplane(ruleset))
        numbers = self.kernel_log.numbers(chosen)
        return tuple(kernel_rule(ruleset, rule, n) for n, rule in zip(numbers, chosen, strict=True))

    def checked(self, ruleset: RuleSet) -> tuple[KernelRule, ...]:
        """The kernel's rules of ``ruleset``, nft having said it would load their table
        (KernelError if not); in the reload thread."""
        kernel = self.chosen(ruleset)
        self.plane.check(kernel)
        return kernel

    def say_how_many(self, ruleset: RuleSet, kernel: tuple[KernelRule, ...]) -> None:
        if self.dataplane(ruleset) == "kernel":
            say(
                f"dataplane kernel: nftables forwards {len(kernel)} of {len(ruleset.rules)} "
                f"rules (table {FAMILY} {NAME}); rinetd-run the others"
            )

    def _apply(self, kernel: tuple[KernelRule, ...], ruleset: RuleSet, logged: bool) -> None:
        self.plane.apply(kernel, accounting=logged)
        self.loaded, self.ruleset = kernel, ruleset

    async def load(self, kernel: tuple[KernelRule, ...], ruleset: RuleSet) -> None:
        """Load the table for ``kernel`` (KernelError: the old one stays).  Conntrack's
        events are read from before it loads while its connections are logged or
        counted (none missed), and no longer after."""
        logged = bool(kernel) and (ruleset.logfile is not None or ruleset.metrics is not None)
        if logged and self.conntrack is None:
            try:
                self.conntrack = ConntrackLog(self.kernel_log, self._log)
            except OSError as error:
                raise KernelError(f"cannot read conntrack's events: {error.strerror}") from None
        was_logged, self.logged = self.logged, False
        try:
            await self._run(functools.partial(self._apply, kernel, ruleset, logged))
            self.logged = logged
        except KernelError:
            self.logged = was_logged
            raise
        finally:
            if self.conntrack is not None and not self.logged:
                self.conntrack.close()
                self.conntrack = None

    def names_changed(self) -> None:
        """dns-refresh found a name at a new address: the table follows, if it holds a
        rule to that name (in the reload thread, after any reload under way)."""
        if self.ruleset is None or not self.loaded:
            return
        task = asyncio.get_running_loop().create_task(self._follow())
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    def _followed(self) -> tuple[KernelRule, ...] | None:
        ruleset = self.ruleset
        if ruleset is None or not self.loaded:
            return None
        kernel = self.chosen(ruleset, follow_names=True)
        if kernel == self.loaded:
            return None
        self._apply(kernel, ruleset, self.logged)
        return kernel

    async def _follow(self) -> None:
        try:
            kernel = await self._run(self._followed)
        except KernelError as error:
            say(f"dataplane kernel: the table keeps the old addresses: {error}")
            return
        if kernel is not None:
            targets = ", ".join(f"line {rule.line} to {rule.connect}" for rule in kernel)
            say(f"dataplane kernel: the table follows dns-refresh: {targets}")

    def traffic(self) -> list[tuple[tuple[str, int, str], int, int]]:
        """Per kernel rule: its bind as the metrics name it, the packets and bytes the
        table forwarded (nft asked now: call it off the loop); none if nft cannot say."""
        loaded = self.loaded
        if not loaded:
            return []
        try:
            counted = read_counters(self.plane.counters())
        except KernelError:
            return []
        rows: list[tuple[tuple[str, int, str], int, int]] = []
        for kernel in loaded:
            rule = self.kernel_log.rule(kernel.number)
            if rule is not None and kernel.number in counted:
                packets, size = counted[kernel.number]
                rows.append(((rule.bind.host, rule.bind.port, rule.bind.protocol), packets, size))
        return rows

    @property
    def lost(self) -> int:
        return self.conntrack.lost if self.conntrack is not None else 0

    def stop(self) -> None:
        """The table and the switches removed; the flows still open logged."""
        for task in self._following:
            task.cancel()
        self.plane.remove()
        if self.conntrack is not None:
            self.conntrack.close()  # its open flows' done lines, before the log closes
            self.conntrack = None
