"""Bind collisions across rules (E010, E011) and with the metrics endpoint (E019)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rinetd_run.ruleset import (
    Endpoint,
)

from .. import ast
from ..diagnostics import Diagnostic, Related, Span, make
from .scopes import Found, RuleDraft

__all__ = ["bind_span", "check_binds"]


def _bind_key(bind: Endpoint) -> str:
    return bind.address or bind.host


@dataclass
class _Port:
    """The binds of one port and protocol seen so far, looked up by what they collide with:
    each new bind is checked in constant time, so 10,000 rules on one port cost what
    10,000 on different ports do."""

    by_address: dict[str, tuple[int, RuleDraft]] = field(default_factory=dict)
    first_address: tuple[int, RuleDraft] | None = None  # numeric, either family
    first_ipv4: tuple[int, RuleDraft] | None = None  # 0.0.0.0 included
    first_any4: tuple[int, RuleDraft] | None = None  # 0.0.0.0
    first_any6: tuple[int, RuleDraft] | None = None  # ::

    def collision(self, bind: Endpoint) -> tuple[RuleDraft, str] | None:
        """The first earlier bind this one cannot share its port with, and why."""
        key, address = _bind_key(bind), bind.address
        candidates = [self.by_address.get(key)]
        if address == "::":  # dual-stack: takes the port on every address of both families
            candidates.append(self.first_any4 if bind.protocol == "udp" else self.first_address)
        elif address == "0.0.0.0":
            candidates.append(self.first_any6)
            if bind.protocol == "tcp":
                candidates.append(self.first_ipv4)
        elif address is not None and bind.protocol == "tcp":
            # UDP gives each datagram to the most specific socket, so there a wildcard and
            # a specific address share a port (as 0.73 does); TCP cannot.
            candidates.append(self.first_any6)
            if ":" not in address:
                candidates.append(self.first_any4)
        found = [c for c in candidates if c is not None]
        if not found:
            return None
        draft = min(found, key=lambda c: c[0])[1]
        assert draft.bind is not None
        return draft, "duplicate" if _bind_key(draft.bind) == key else "overlap"

    def add(self, index: int, bind: Endpoint, draft: RuleDraft) -> None:
        entry, address = (index, draft), bind.address
        self.by_address.setdefault(_bind_key(bind), entry)
        if address is None:
            return
        self.first_address = self.first_address or entry
        if ":" not in address:
            self.first_ipv4 = self.first_ipv4 or entry
        if address == "0.0.0.0":
            self.first_any4 = self.first_any4 or entry
        elif address == "::":
            self.first_any6 = self.first_any6 or entry


def _collision(draft: RuleDraft, bind: Endpoint, earlier: RuleDraft, why: str) -> Diagnostic:
    here, there = bind_span(draft.node), bind_span(earlier.node)
    written = f"{bind.host} {bind.port}/{bind.protocol}"
    if why == "duplicate":
        return make(
            "E010",
            f"{written} is bound twice",
            here,
            hint="remove one of the two rules",
            related=(Related(there, "first bound here"),),
        )
    return make(
        "E011",
        f"{written} overlaps the bind of line {there.line}",
        here,
        hint="a wildcard address (0, 0.0.0.0, ::) takes the port on every "
        "address; use distinct ports or specific addresses",
        related=(Related(there, "this bind takes the same port"),),
    )


def check_binds(drafts: list[RuleDraft], metrics: tuple[ast.MetricsLine, Endpoint] | None) -> Found:
    """E010/E011: two rules that cannot both have their listening socket; E019: the
    metrics endpoint where a rule listens."""
    found: Found = []
    ports: dict[tuple[str, int], _Port] = {}
    for index, draft in enumerate(drafts):
        bind = draft.bind
        if bind is None:
            continue
        port = ports.setdefault((bind.protocol, bind.port), _Port())
        collision = port.collision(bind)
        if collision is not None:
            found.append(_collision(draft, bind, *collision))
        port.add(index, bind, draft)
    if metrics is not None:
        node, endpoint = metrics
        collision = ports.get(("tcp", endpoint.port), _Port()).collision(endpoint)
        if collision is not None:
            there = bind_span(collision[0].node)
            found.append(
                make(
                    "E019",
                    f"metrics {endpoint.host} {endpoint.port} takes a port a rule binds",
                    node.span,
                    hint="use another port or address for the metrics endpoint",
                    related=(Related(there, "this rule binds it"),),
                )
            )
    return found


def bind_span(node: ast.RuleLine | ast.BrokenRule) -> Span:
    assert node.bind_address is not None and node.bind_port is not None
    return replace(
        node.span, column=node.bind_address.span.column, end_column=node.bind_port.span.end_column
    )
