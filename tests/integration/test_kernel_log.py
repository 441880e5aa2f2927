"""The kernel data plane's log, from conntrack's events: the same traffic (allowed and
refused clients, TCP and UDP, IPv4 and IPv6, a connection held across a reload)
through ``--dataplane user`` and ``--dataplane kernel`` gives the same outcomes and the
same log facts, but for the differences the README states (IP-level byte counts, a
reset's own word).  Events the kernel drops for a full buffer are counted and said."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.helpers import ROOT, compile_config
from tests.integration.conftest import ECHO, HTTP, UDP_ECHO
from tests.integration.daemons import Daemon, agent
from tests.integration.test_kernel import _HOLD, C1_FW, C1_FW6, C2_FW, _start, _table
from tests.integration.topology import Topology

NOTHING = 7999  # no backend listens there: the backend refuses

CONFIG = f"""\
dataplane kernel
logfile LOG
logjson
metrics 127.0.0.1 9320
0 8120 10.62.0.2 {ECHO}
0 8121 10.62.0.2 {HTTP}
0 8122 10.62.0.2 {ECHO}
allow 10.61.4.*
0 8123 10.62.0.2 {NOTHING}
0 8124/udp 10.62.0.2 {UDP_ECHO}/udp
{C1_FW6} 8125 fd62::2 {ECHO}
"""
# The reload puts a rule first: every rule's line moves, so a connection opened before
# it must be logged with the line it was opened by.
RELOADED = CONFIG.replace("logjson\n", f"logjson\n0 8126 10.62.0.2 {ECHO}\n")

Attempt = Callable[[Topology], dict[str, Any]]


def _agent(role: str, *args: str) -> Attempt:
    return lambda net: agent(net, role, *args)


# (name, how to try, log lines it makes before the stop)
SCENARIOS: list[tuple[str, Attempt, int]] = [
    ("echo", _agent("c1", "echo-client", "--host", C1_FW, "--port", "8120", "--size", "1000"), 2),
    ("www", _agent("c1", "http-get", "--url", f"http://{C1_FW}:8121/index.html"), 2),
    ("not allowed", _agent("c2", "echo-client", "--host", C2_FW, "--port", "8122"), 1),
    ("backend refuses", _agent("c1", "tcp-client", "--host", C1_FW, "--port", "8123"), 2),
    ("udp", _agent("c1", "udp-client", "--host", C1_FW, "--port", "8124", "--size", "100"), 1),
    ("ipv6", _agent("c1", "echo-client", "--host", C1_FW6, "--port", "8125", "--size", "700"), 2),
]


def _through(result: dict[str, Any]) -> bool:
    return result["error"] is None and result["bytes"] > 0


def _run(net: Topology, dataplane: str) -> tuple[dict[str, bool], list[dict[str, Any]]]:
    """Every scenario through one rinetd-run, a held connection ended after a reload,
    then the stop; the outcomes and the log lines (each waited for before the next)."""
    daemon = _start(net, CONFIG, f"kernel-log-{dataplane}", "--dataplane", dataplane)
    through: dict[str, bool] = {}
    try:
        held = net.spawn("c1", ["python3", "-c", _HOLD, C1_FW, "8120"], stdout=subprocess.PIPE)
        assert held.stdout is not None and held.stdout.readline().strip() == b"open"
        expected = 1
        daemon.log_lines(expected, timeout=15)
        compile_config(RELOADED, daemon.workdir)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_reload()
        net.stop(held)
        expected += 1
        daemon.log_lines(expected, timeout=15)
        for name, attempt, lines in SCENARIOS:
            through[name] = _through(attempt(net))
            expected += lines
            daemon.log_lines(expected, timeout=15)
        if dataplane == "kernel":
            assert _table(net) is not None
    finally:
        daemon.stop()
    assert _table(net) is None
    accounting = net.run("fw", ["cat", "/proc/sys/net/netfilter/nf_conntrack_acct"]).stdout
    assert accounting.strip() == "0"  # put back as it was
    return through, [json.loads(line) for line in daemon.log_lines(expected + 1)]


def _facts(line: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(line[key] for key in ("client", "bind", "bind_port", "connect", "connect_port"))


def test_the_same_traffic_through_user_space_and_the_kernel_logs_the_same_facts(
    net: Topology,
) -> None:
    user_through, user_log = _run(net, "user")
    kernel_through, kernel_log = _run(net, "kernel")
    assert (
        user_through
        == kernel_through
        == {
            "echo": True,
            "www": True,
            "not allowed": False,
            "backend refuses": False,
            "udp": True,
            "ipv6": True,
        }
    )
    assert len(user_log) == len(kernel_log) == 13
    for user, kernel in zip(user_log, kernel_log, strict=True):
        assert _facts(user) == _facts(kernel), (user, kernel)
        assert user["line"] == kernel["line"], (user, kernel)
        if user["result"] == "done-local-closed" and user["connect_port"] == NOTHING:
            # A backend that refuses: user space accepted the client (and may have read
            # its bytes) and logs the backend closing; through NAT the client's SYN gets
            # the backend's reset, and the kernel does not say which side sent it.
            assert kernel["result"] == "done-reset"
            assert kernel["bytes_from_client"] > 0  # the SYN
            continue
        assert user["result"] == kernel["result"], (user, kernel)
        # Conntrack counts IP packets, headers included: never fewer than the payload.
        for key in ("bytes_from_client", "bytes_to_client"):
            if user["result"] in ("opened", "not-allowed"):
                assert kernel[key] == user[key] == 0
            else:
                assert kernel[key] >= user[key] and kernel[key] > 0, (user, kernel)
    # The connection held across the reload keeps the line it was opened by (5), while
    # the rule is on line 6 after it.
    assert [(line["result"], line["line"]) for line in kernel_log[:2]] == [
        ("opened", 5),
        ("done-remote-closed", 5),
    ]
    echo = [line for line in kernel_log if line["bind_port"] == 8120][2:]
    assert [line["line"] for line in echo] == [6, 6]
    # The UDP flow still open at the stop is logged then, as user space logs its session.
    assert kernel_log[-1]["bind_port"] == 8124
    assert kernel_log[-1]["result"] == "done-remote-closed"
    assert kernel_log[-1]["bytes_from_client"] >= 100


def _metrics(net: Topology) -> dict[str, float]:
    script = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9320/metrics').read().decode())"
    text = net.run("fw", ["python3", "-c", script]).stdout
    return {
        name: float(value)
        for line in text.splitlines()
        if line and not line.startswith("#")
        for name, value in [line.rsplit(" ", 1)]
    }


_UDP_FLOWS = """
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for source in range(20000, 20000 + count):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("", source))
        sock.sendto(b"x", (host, port))
"""


def _connections(net: Topology, count: int) -> None:
    script = (
        "import socket, sys\n"
        f"for _ in range({count}):\n"
        f"    s = socket.create_connection(('{C1_FW}', 8120), timeout=5)\n"
        "    s.close()\n"
    )
    net.run("c1", ["python3", "-c", script])


def test_events_the_kernel_drops_are_counted_and_said(net: Topology) -> None:
    daemon: Daemon = _start(net, CONFIG, "kernel-log-lost")
    try:
        _connections(net, 10)
        daemon.log_lines(20, timeout=15)
        # Stopped, it reads nothing: the kernel fills its 8 MiB and drops the rest.  UDP
        # flows from 25,000 ports: an event each that the filter lets through (twice what
        # the buffer holds here).
        daemon.signal(signal.SIGSTOP)
        try:
            net.run("c1", ["python3", "-c", _UDP_FLOWS, C1_FW, "8124", "25000"])
        finally:
            daemon.signal(signal.SIGCONT)
        daemon.wait_for_stderr("conntrack events lost:", timeout=20)
        said = next(line for line in daemon.errors if "conntrack events lost" in line)
        assert int(said.split("lost: ")[1].split()[0]) > 0, said
        # It goes on logging what comes after.
        time.sleep(1)
        before = len(daemon.log_lines(0))
        _connections(net, 5)
        daemon.log_lines(before + 10, timeout=15)
        # The metrics count the kernel's connections from the same events, and the loss.
        page = _metrics(net)
        assert page["rinetd_run_kernel_rules"] == 6  # every rule
        assert page["rinetd_run_kernel_events_lost_total"] > 0
        done = 'rinetd_run_connections_total{bind="0",port="8120",protocol="tcp",line="5",'
        assert page[done + 'result="done-remote-closed"}'] >= 15
        assert page[done + 'result="opened"}'] >= 15
        # The table's own counters, per rule, asked of nft for the page: every packet it
        # forwarded both ways (the 25,000 UDP flows too, whose events were lost).
        tcp = '{bind="0",port="8120",protocol="tcp",line="5"}'
        udp = '{bind="0",port="8124",protocol="udp",line="10"}'
        packets, size = "rinetd_run_kernel_packets_total", "rinetd_run_kernel_bytes_total"
        assert page[packets + tcp] >= 15 * 5  # handshake and close, both ways
        assert page[size + tcp] >= 40 * page[packets + tcp]  # IP and TCP headers at least
        assert page[packets + udp] >= 25_000
        assert page[packets + f'{{bind="{C1_FW6}",port="8125",protocol="tcp",line="11"}}'] == 0
    finally:
        daemon.stop()


LIMITED = f"""\
dataplane kernel
logfile LOG
{C1_FW} 8140 10.62.0.2 {ECHO} [max-connections-per-client=2]
{C1_FW} 8141 10.62.0.2 {ECHO} [max-connections=1]
"""


def _hold(net: Topology, role: str, port: int) -> subprocess.Popen[bytes]:
    held = net.spawn(role, ["python3", "-c", _HOLD, C1_FW, str(port)], stdout=subprocess.PIPE)
    assert held.stdout is not None and held.stdout.readline().strip() == b"open"
    return held


def _echoes(net: Topology, role: str, port: int) -> bool:
    done = agent(net, role, "echo-client", "--host", C1_FW, "--port", str(port), "--size", "10")
    return bool(done["error"] is None and done.get("intact"))


def test_limits_are_counted_by_the_table_and_refused_by_rinetd_run(net: Topology) -> None:
    daemon = _start(net, LIMITED, "kernel-limits")
    held: list[subprocess.Popen[bytes]] = []
    try:
        table = net.run("fw", ["nft", "list", "table", "inet", "rinetd_run"]).stdout
        assert "ct count over 2" in table and "ct count over 1" in table
        held += [_hold(net, "c1", 8140), _hold(net, "c1", 8140)]
        assert not _echoes(net, "c1", 8140)  # a third from c1: over its limit
        assert _echoes(net, "c2", 8140)  # another client has its own count
        net.stop(held.pop())
        time.sleep(0.5)
        assert _echoes(net, "c1", 8140)  # the count follows what is open
        held.append(_hold(net, "c2", 8141))
        assert not _echoes(net, "c1", 8141)  # the rule's one connection is taken
        refused = [line for line in daemon.log_lines(0) if line.rstrip().endswith("exceeded")]
        assert [line.split("\t")[1:4] for line in refused] == [
            ["10.61.4.10", C1_FW, "8140"],
            ["10.61.4.10", C1_FW, "8141"],
        ]
    finally:
        for each in held:
            net.stop(each)
        daemon.stop()


_ASK = """
import socket, sys
from rinetd_run.conntrack_messages import Flow, answer, counters_request
client, port, bind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
flow = Flow("update", 0, 0, socket.AF_INET, 17, client, port, bind, 8150, None, None, None, None)
asker = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
asker.bind((0, 0))
asker.send(counters_request(flow, 1))
asker.settimeout(2)
found = answer(asker.recv(65536))
print(found.timeout if found else "gone")
"""


def test_a_udp_session_ends_after_the_rule_s_timeout(net: Topology) -> None:
    rule = f"0 8150/udp 10.62.0.2 {UDP_ECHO}/udp [timeout=2]"
    config = f"dataplane kernel\nlogfile LOG\nlogjson\n{rule}\n"
    daemon = _start(net, config, "kernel-udp-timeout")
    try:
        table = net.run("fw", ["nft", "list", "table", "inet", "rinetd_run"]).stdout
        assert 'ct timeout set "udp_ipv4_2s"' in table
        sent = agent(net, "c1", "udp-client", "--host", C1_FW, "--port", "8150", "--size", "64")
        assert sent["intact"]
        (opened,) = (json.loads(line) for line in daemon.log_lines(1))
        ask = ["env", f"PYTHONPATH={ROOT / 'runtime'}", sys.executable, "-c", _ASK]
        ask += [opened["client"], str(opened["client_port"]), C1_FW]
        # Conntrack forgets it after the rule's 2 s, not its own 30 s ...
        assert int(net.run("fw", ask).stdout) <= 2
        time.sleep(3)
        # ... and, asked about it after that, reaps it at once (its garbage collection
        # would find it within a minute): the done line follows.
        assert net.run("fw", ask).stdout.strip() == "gone"
        done = json.loads(daemon.log_lines(2, timeout=10)[1])
        assert done["result"] == "done-remote-closed"
        assert done["bytes_from_client"] >= 64 and done["bytes_to_client"] >= 64
    finally:
        daemon.stop()


def test_with_workers_one_table_one_log_and_every_worker_refuses_over_a_limit(
    net: Topology,
) -> None:
    config = LIMITED.replace("logfile LOG\n", "logfile LOG\nlogjson\n")
    daemon = _start(net, config, "kernel-workers", "--workers", "2")
    held: list[subprocess.Popen[bytes]] = []
    try:
        daemon.wait_for_stderr("dataplane kernel: nftables forwards 2 of 2 rules")
        held.append(_hold(net, "c2", 8141))
        # Over the limit, many times: the kernel gives the connections to the two
        # workers' listeners in turn (SO_REUSEPORT); each refuses them.
        assert not any(_echoes(net, "c1", 8141) for _ in range(6))
        assert _echoes(net, "c1", 8140)
        net.stop(held.pop())
        lines = [json.loads(line) for line in daemon.log_lines(0)]
        refused = [line for line in lines if line["result"] == "limit-exceeded"]
        assert len(refused) == 6
        # One line each for the kernel's connections (worker 0 reads conntrack).
        echo = [line for line in lines if line["bind_port"] == 8140]
        assert [line["result"] for line in echo] == ["opened", "done-remote-closed"]
        compile_config(config.replace("8140", "8142"), daemon.workdir)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_stderr("reloaded: forwarding", count=2)
        assert _echoes(net, "c1", 8142)
        assert (
            "tcp dport 8142" in net.run("fw", ["nft", "list", "table", "inet", "rinetd_run"]).stdout
        )
        said = [line for line in daemon.errors if "dataplane kernel: nftables" in line]
        assert len(said) == 2  # at start and at the reload: worker 0 alone owns the table
    finally:
        for each in held:
            net.stop(each)
        daemon.stop()
    assert _table(net) is None
