"""What a reload changes, decided before any socket is touched.  A pure function."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .ruleset import Rule

__all__ = ["ReloadPlan", "plan_reload"]

Key = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    keep: dict[Key, Rule]  # listening sockets that stay open, with their new rule
    open: dict[Key, Rule]  # new listening sockets
    close: tuple[Key, ...]  # listening sockets to close


def plan_reload(current: Iterable[Key], rules: Iterable[Rule]) -> ReloadPlan:
    """Keep every socket whose protocol, address and port are still bound; rules may change."""
    wanted = {rule.listener: rule for rule in rules}
    existing = set(current)
    return ReloadPlan(
        keep={key: rule for key, rule in wanted.items() if key in existing},
        open={key: rule for key, rule in wanted.items() if key not in existing},
        close=tuple(sorted(key for key in existing if key not in wanted)),
    )
