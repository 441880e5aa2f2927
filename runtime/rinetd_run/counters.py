"""What the Prometheus page says, as pure code: counters kept where log events pass,
and the page in the text exposition format written from a copy of them and the
process facts ``process`` read.

Counting is a few dictionary increments per log event (two events a
connection), done only when `metrics` is set.  ``metrics`` serves the page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from . import logline
from .logline import Event
from .ruleset import RuleSet

__all__ = ["Counters", "ProcessFacts", "counting", "exposition"]


class ProcessFacts(NamedTuple):
    """What ``process`` read of the process, for the standard process metrics."""

    cpu_seconds: float
    open_fds: int | None  # None where /proc cannot say
    max_fds: int
    memory: tuple[int, int] | None  # virtual and resident bytes
    start_time: float | None  # seconds since the epoch


RuleKey = tuple[str, int, str]  # bind as written, port, protocol: unique in a rule set
# A pool member: pool, host, port, up, open, opened, connect failures, checks passed, failed.
MemberRow = tuple[str, str, int, bool, int, int, int, int, int]
# Words that end a connection that was opened (and count its bytes).
_NOT_AFTER_OPENED = frozenset(
    {
        logline.OPENED,
        logline.DENIED,
        logline.NOT_ALLOWED,
        logline.LIMIT_EXCEEDED,
        logline.ACCEPT_FAILED,
    }
)


@dataclass
class Counters:
    """Everything the page says that is counted rather than read from the system."""

    results: dict[tuple[RuleKey, str], int] = field(default_factory=dict)
    open: dict[RuleKey, int] = field(default_factory=dict)
    bytes_from_client: dict[RuleKey, int] = field(default_factory=dict)
    bytes_to_client: dict[RuleKey, int] = field(default_factory=dict)
    lines: dict[RuleKey, int] = field(default_factory=dict)  # a rule's source line, for labels
    reloads: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0})
    last_reload: float = 0.0  # time of the last good (re)load
    digest: str = ""
    kernel_rules: int = 0  # rules nftables forwards now (dataplane kernel)
    kernel_events_lost: int = 0  # conntrack events the kernel dropped for us
    members: list[MemberRow] = field(default_factory=list)  # read when a page is asked for
    # Per kernel rule: packets and bytes nftables forwarded (asked of nft for each page).
    kernel_traffic: list[tuple[RuleKey, int, int]] = field(default_factory=list)

    def snapshot(self) -> Counters:
        """A copy the page can be written from while the loop goes on counting."""
        return replace(
            self,
            results=self.results.copy(),
            open=self.open.copy(),
            bytes_from_client=self.bytes_from_client.copy(),
            bytes_to_client=self.bytes_to_client.copy(),
            lines=self.lines.copy(),
            reloads=self.reloads.copy(),
            members=list(self.members),
        )

    def rule_set(self, ruleset: RuleSet, digest: str) -> None:
        """The rules now served: their labels (counts of rules gone stay on the page)."""
        for rule in ruleset.rules:
            self.lines[(rule.bind.host, rule.bind.port, rule.bind.protocol)] = rule.line
        self.digest, self.last_reload = digest, time.time()

    def count(self, event: Event) -> None:
        key = (event.bind_host, event.bind_port, event.protocol)
        word = event.result
        self.results[key, word] = self.results.get((key, word), 0) + 1
        if word == logline.OPENED:
            self.open[key] = self.open.get(key, 0) + 1
        elif word not in _NOT_AFTER_OPENED:
            self.open[key] = self.open.get(key, 0) - 1
            self.bytes_from_client[key] = (
                self.bytes_from_client.get(key, 0) + event.bytes_from_client
            )
            self.bytes_to_client[key] = self.bytes_to_client.get(key, 0) + event.bytes_to_client


def counting(log: Callable[[Event], None], counters: Counters) -> Callable[[Event], None]:
    """``log`` that counts each event on the way."""

    def log_and_count(event: Event) -> None:
        counters.count(event)
        log(event)

    return log_and_count


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(key: RuleKey, lines: dict[RuleKey, int], **more: str) -> str:
    bind, port, protocol = key
    pairs = {"bind": bind, "port": str(port), "protocol": protocol}
    line = lines.get(key)
    pairs["line"] = str(line) if line is not None else ""
    pairs.update(more)
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs.items()) + "}"


def _family(out: list[str], name: str, kind: str, text: str) -> None:
    out.append(f"# HELP {name} {text}")
    out.append(f"# TYPE {name} {kind}")


def _one(out: list[str], name: str, kind: str, text: str, value: float) -> None:
    """A family of one unlabelled sample."""
    _family(out, name, kind, text)
    out.append(f"{name} {value}")


def _process(out: list[str], facts: ProcessFacts) -> None:
    """The standard process metrics, from what ``process`` read."""
    text = "User and system CPU time in seconds."
    _one(out, "process_cpu_seconds_total", "counter", text, facts.cpu_seconds)
    if facts.open_fds is not None:
        text = "Number of open file descriptors."
        _one(out, "process_open_fds", "gauge", text, facts.open_fds)
    text = "Maximum number of open file descriptors."
    _one(out, "process_max_fds", "gauge", text, facts.max_fds)
    if facts.memory is not None:
        text = "Virtual memory size in bytes."
        _one(out, "process_virtual_memory_bytes", "gauge", text, facts.memory[0])
        text = "Resident memory size in bytes."
        _one(out, "process_resident_memory_bytes", "gauge", text, facts.memory[1])
    if facts.start_time is not None:
        text = "Start time of the process since unix epoch in seconds."
        _one(out, "process_start_time_seconds", "gauge", text, facts.start_time)


def exposition(counters: Counters, process: ProcessFacts) -> str:
    """The page, in the Prometheus text format (version 0.0.4).  A rule's key holds its
    bind's protocol, so a UDP rule's sessions stay UDP after the rule is removed."""
    out: list[str] = []
    lines = counters.lines
    _family(
        out,
        "rinetd_run_connections_total",
        "counter",
        "Connections (TCP) or sessions (UDP) by rule and log result word.",
    )
    for (key, word), value in sorted(counters.results.items()):
        out.append(f"rinetd_run_connections_total{_labels(key, lines, result=word)} {value}")
    _family(out, "rinetd_run_connections_open", "gauge", "TCP connections open now, by rule.")
    for key, value in sorted(counters.open.items()):
        if key[2] != "udp":
            out.append(f"rinetd_run_connections_open{_labels(key, lines)} {value}")
    _family(out, "rinetd_run_udp_sessions_open", "gauge", "UDP sessions open now, by rule.")
    for key, value in sorted(counters.open.items()):
        if key[2] == "udp":
            out.append(f"rinetd_run_udp_sessions_open{_labels(key, lines)} {value}")
    for name, values, text in (
        ("rinetd_run_client_bytes_total", counters.bytes_from_client, "Bytes from clients"),
        ("rinetd_run_backend_bytes_total", counters.bytes_to_client, "Bytes from backends"),
    ):
        _family(out, name, "counter", text + " by rule, counted when a connection ends.")
        for key, value in sorted(values.items()):
            out.append(f"{name}{_labels(key, lines)} {value}")
    _family(out, "rinetd_run_reloads_total", "counter", "Rule set reloads (SIGHUP) by outcome.")
    for outcome, value in sorted(counters.reloads.items()):
        out.append(f'rinetd_run_reloads_total{{result="{outcome}"}} {value}')
    _one(
        out,
        "rinetd_run_last_reload_success_timestamp_seconds",
        "gauge",
        "When the rule set now served was loaded.",
        counters.last_reload,
    )
    _family(out, "rinetd_run_ruleset_info", "gauge", "The rule set now served, by its digest.")
    out.append(f'rinetd_run_ruleset_info{{digest="{_escape(counters.digest)}"}} 1')
    text = "Rules nftables forwards now (dataplane kernel); rinetd-run forwards the others."
    _one(out, "rinetd_run_kernel_rules", "gauge", text, counters.kernel_rules)
    text = (
        "Conntrack events the kernel dropped for a full buffer: the connections they told "
        "of are missing from the counts and the log."
    )
    _one(out, "rinetd_run_kernel_events_lost_total", "counter", text, counters.kernel_events_lost)
    for index, (name, text) in enumerate(
        (
            ("rinetd_run_kernel_packets_total", "Packets nftables forwarded, both ways, by rule."),
            ("rinetd_run_kernel_bytes_total", "IP bytes nftables forwarded, both ways, by rule."),
        )
    ):
        _family(out, name, "counter", text)
        for key, packets, size in sorted(counters.kernel_traffic):
            out.append(f"{name}{_labels(key, lines)} {(packets, size)[index]}")
    _members(out, counters.members)
    _process(out, process)
    return "".join(line + "\n" for line in out)


def _members(
    out: list[str], rows: list[tuple[str, str, int, bool, int, int, int, int, int]]
) -> None:
    """The pools' members: up or down, connections, failed connects, checks."""
    families = (
        ("rinetd_run_pool_member_up", "gauge", "1 while a pool member takes connections."),
        ("rinetd_run_pool_member_connections_open", "gauge", "Connections open to a member."),
        ("rinetd_run_pool_member_connections_total", "counter", "Connections given a member."),
        (
            "rinetd_run_pool_member_connect_failures_total",
            "counter",
            "Connects to a member that failed (the client moved to the next member).",
        ),
    )
    ordered = sorted(rows)
    for index, (name, kind, text) in enumerate(families):
        _family(out, name, kind, text)
        for pool, host, port, up, open_, opened, failures, _passed, _failed in ordered:
            labels = f'{{pool="{_escape(pool)}",member="{_escape(host)}",port="{port}"}}'
            value = (int(up), open_, opened, failures)[index]
            out.append(f"{name}{labels} {value}")
    name = "rinetd_run_pool_member_checks_total"
    _family(out, name, "counter", "Active health checks of a member, by result.")
    for pool, host, port, _up, _open, _opened, _failures, passed, failed in ordered:
        labels = f'pool="{_escape(pool)}",member="{_escape(host)}",port="{port}"'
        out.append(f'{name}{{{labels},result="passed"}} {passed}')
        out.append(f'{name}{{{labels},result="failed"}} {failed}')
