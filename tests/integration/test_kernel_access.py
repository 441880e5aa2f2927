"""The kernel's access verdict against rinetd's, with real packets: for generated
global and per-rule allow/deny patterns and client addresses, a connection is DNAT'd
by table inet rinetd_run exactly when ``access.verdict`` allows it.

Each example loads one table (``kernel_table.render``) with a rule per generated
access list, each on a port of its own, on the firewall; a set added for the test
records every (client address, port) its DNAT chains take.  SYNs from spoofed client
addresses are sent from client 1 with scapy, then the set is compared with the
verdicts."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rinetd_run.access import verdict
from rinetd_run.kernel_patterns import ipv4_terms
from rinetd_run.kernel_table import KernelRule, render
from rinetd_run.ruleset import AccessRule
from tests.integration.conftest import ECHO
from tests.integration.topology import Topology

C1_FW = "10.61.4.1"
FIRST_PORT = 8300
addresses = st.integers(1 << 24, (224 << 24) - 1).map(lambda n: str(ipaddress.IPv4Address(n)))


@st.composite
def near(draw: st.DrawFn, address: str) -> str:
    """A pattern made from ``address``'s text: some pieces turned into ``?`` or ``*``."""
    text = list(address)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(at, min(len(text), at + 5)))
        text[at:end] = [draw(st.sampled_from(["*", "?", "*", "1"]))]
    return "".join(text) or "*"


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[tuple[list[AccessRule], list[AccessRule]]], list[str]]:
    """Access lists (global, rule) for a few rules, and the client addresses to try."""
    clients = draw(st.lists(addresses, min_size=6, max_size=10, unique=True))

    def line(kind: str) -> AccessRule:
        return AccessRule(kind, draw(near(draw(st.sampled_from(clients)))), 1)  # type: ignore[arg-type]

    rules = []
    for _ in range(draw(st.integers(4, 8))):
        rules.append(
            (
                [
                    line(draw(st.sampled_from(["allow", "deny"])))
                    for _ in range(draw(st.integers(0, 2)))
                ],
                [
                    line(draw(st.sampled_from(["allow", "deny"])))
                    for _ in range(draw(st.integers(0, 2)))
                ],
            )
        )
    return rules, clients


_SEND = """
import sys, json
from scapy.all import IP, TCP, send
packets = [IP(src=src, dst=sys.argv[1]) / TCP(sport=40000 + n, dport=port, flags="S")
           for n, (src, port) in enumerate(json.loads(sys.argv[2]))]
send(packets, verbose=0)
"""


def _seen(net: Topology) -> set[tuple[str, int]]:
    listed = net.run("fw", ["nft", "-j", "list", "set", "inet", "rinetd_run", "seen"]).stdout
    found: set[tuple[str, int]] = set()
    for item in json.loads(listed)["nftables"]:
        for element in item.get("set", {}).get("elem", []):
            address, port = element["concat"]
            found.add((address, port))
    return found


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases())
def test_the_kernel_dnats_exactly_the_clients_rinetd_allows(
    net: Topology, case: tuple[list[tuple[list[AccessRule], list[AccessRule]]], list[str]]
) -> None:
    lists, clients = case
    rules, expected = [], set()
    for number, (global_lines, rule_lines) in enumerate(lists, 1):
        patterns = [entry.pattern for entry in (*global_lines, *rule_lines)]
        if any(ipv4_terms(pattern) is None for pattern in patterns):
            continue  # kept in user space: not the kernel's to decide
        port = FIRST_PORT + number
        rules.append(
            KernelRule(
                number=number,
                protocol="tcp",
                version=4,
                bind=C1_FW,
                port=port,
                connect="10.62.0.2",
                connect_port=ECHO,
                src=None,
                denies=tuple(e.pattern for e in (*global_lines, *rule_lines) if e.kind == "deny"),
                allows=tuple(
                    allowed
                    for entries in (global_lines, rule_lines)
                    if (allowed := tuple(e.pattern for e in entries if e.kind == "allow"))
                ),
                line=number,
            )
        )
        for client in clients:
            if verdict(global_lines, rule_lines, client) == "allowed":
                expected.add((client, port))
    script = render(rules, frozenset(), "forwarding before: ipv4=1 ipv6=1")
    # The test's own record of what the DNAT chains take.
    script += "add set inet rinetd_run seen { type ipv4_addr . inet_service; }\n" + "".join(
        f"insert rule inet rinetd_run rule_{rule.number}_nat add @seen {{ ip saddr . tcp dport }}\n"
        for rule in rules
    )
    fw = net.command("fw", ["nft", "-f", "-"])
    subprocess.run(fw, input=script, text=True, check=True, capture_output=True)
    try:
        pairs = [(client, FIRST_PORT + rule.number) for rule in rules for client in clients]
        net.run("c1", [sys.executable, "-c", _SEND, C1_FW, json.dumps(pairs)])
        time.sleep(0.3)
        assert _seen(net) == expected
    finally:
        subprocess.run(
            net.command("fw", ["nft", "delete", "table", "inet", "rinetd_run"]),
            capture_output=True,
            check=False,
        )
