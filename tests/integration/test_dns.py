"""DNS refresh against a real name server: dnsmasq on the backend host answers for the
firewall (its own /etc/netns/NS/resolv.conf), and its answer changes during the test."""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.integration.conftest import AGENT
from tests.integration.daemons import Daemon, agent, hello_server, start_ours
from tests.integration.topology import Topology

C1_FW = "10.61.4.1"
NAME, MULTI = "backend.rinetdc.test", "multi.rinetdc.test"
HELLO, FAILOVER = 7100, 7200  # backend ports: a hello server on each address below
SERVED = ("10.62.0.2", "10.62.0.3")
DEAD = "10.62.0.4"  # an address of the backend host where nothing listens


class NameServer:
    def __init__(self, net: Topology, hosts: Path) -> None:
        self.net, self.hosts = net, hosts
        self.process: subprocess.Popen[bytes] | None = None

    def answer(self, lines: str) -> None:
        """What the name server says from now on (dnsmasq re-reads its hosts on SIGHUP)."""
        self.hosts.write_text(lines)
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)
            time.sleep(0.3)


def _resolves_to(net: Topology, name: str) -> list[str]:
    """The addresses of ``name`` in the order the firewall's resolver gives them."""
    code = (
        "import socket\n"
        "try:\n"
        f"    found = socket.getaddrinfo({name!r}, None, type=socket.SOCK_STREAM)\n"
        "except OSError:\n"
        "    found = []\n"
        "print(' '.join(dict.fromkeys(entry[4][0] for entry in found)))\n"
    )
    command = net.command("fw", [sys.executable, "-c", code])
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout.split()


@pytest.fixture(scope="module")
def dns(net: Topology) -> Iterator[NameServer]:
    if shutil.which("dnsmasq") is None and not Path("/usr/sbin/dnsmasq").exists():
        pytest.fail("dnsmasq is missing: ./test.sh as root installs it (dnsmasq-base)")
    # A folder of its own each time: with --dist worksteal a module's tests may be
    # interleaved with others', and its fixtures set up again.
    work = Path(tempfile.mkdtemp(prefix="dns-", dir=net.workdir))
    interface = net.interface("be")
    added: list[str] = []
    helloes: list[subprocess.Popen[bytes]] = []
    netns_etc = Path("/etc/netns") / net.namespace("fw")
    server = NameServer(net, work / "hosts")
    server.answer(f"{SERVED[0]} {NAME}\n")
    try:
        for address in (*SERVED[1:], DEAD):
            net.run("be", ["ip", "addr", "add", f"{address}/24", "dev", interface])
            added.append(address)
        for address in SERVED:
            helloes.append(hello_server(net, address, HELLO))
        netns_etc.mkdir(parents=True)
        (netns_etc / "resolv.conf").write_text(f"nameserver {SERVED[0]}\n")
        server.process = net.spawn(
            "be",
            [
                "/usr/sbin/dnsmasq",
                "--keep-in-foreground",
                "--user=root",  # the hosts file is in the run's private folder
                "--no-resolv",
                "--no-hosts",
                f"--addn-hosts={server.hosts}",
                f"--listen-address={SERVED[0]}",
                "--bind-interfaces",
                "--local=/rinetdc.test/",
                "--local-ttl=0",
                "--cache-size=0",
                f"--pid-file={work / 'dnsmasq.pid'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _resolves_to(net, NAME) == [SERVED[0]], "dnsmasq's answer")
        yield server
    finally:
        # Everything stopped: the fixture may be set up again in this worker (worksteal).
        for process in helloes:
            net.stop(process)
        if server.process is not None:
            net.stop(server.process)
        shutil.rmtree(netns_etc, ignore_errors=True)
        for address in added:
            command = net.command("be", ["ip", "addr", "del", f"{address}/24", "dev", interface])
            subprocess.run(command, capture_output=True, check=False)


@contextlib.contextmanager
def _hello_servers(
    net: Topology, addresses: tuple[str, ...], port: int
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """A hello server on each address, by address: the test may stop some and start
    others in the dict; every one there at the end is stopped, however the test ends."""
    servers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for address in addresses:
            servers[address] = hello_server(net, address, port)
        yield servers
    finally:
        for server in servers.values():
            net.stop(server)


def _reached(net: Topology, port: int) -> Any:
    return agent(net, "c1", "hello", "--host", C1_FW, "--port", str(port)).get("backend")


@pytest.fixture
def forwarder(dns: NameServer, request: pytest.FixtureRequest) -> Iterator[Daemon]:
    dns.answer(f"{SERVED[0]} {NAME}\n")
    config = f"0 9500 {NAME} {HELLO} [dns-refresh=1]\n0 9501 {NAME} {HELLO}\nlogfile LOG\n"
    daemon = start_ours(dns.net, config, request.node.name, "--no-resolve")
    yield daemon
    daemon.stop()


def test_new_connections_follow_the_name_and_old_ones_go_on(
    dns: NameServer, forwarder: Daemon
) -> None:
    net = dns.net
    assert _reached(net, 9500) == SERVED[0] and _reached(net, 9501) == SERVED[0]
    trigger = dns.hosts.parent / "go-on"
    held = net.spawn(
        "c1",
        [sys.executable, AGENT, "hello", "--host", C1_FW, "--port", "9500", "--hold", str(trigger)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert held.stdout is not None
    assert SERVED[0] in held.stdout.readline().decode()
    dns.answer(f"{SERVED[1]} {NAME}\n")
    # Within the refresh period (1 s, a tick of slack): new connections go to the new address.
    wait_until(lambda: _reached(net, 9500) == SERVED[1], f"{NAME} forwarded to its new address", 5)
    assert _reached(net, 9501) == SERVED[0]  # dns-refresh 0: not until a reload
    trigger.write_text("")
    result = held.stdout.read().decode().strip().splitlines()[-1]
    assert '"intact": true' in result, result  # the open connection kept its address
    forwarder.signal(signal.SIGHUP)
    forwarder.wait_for_stderr("reloaded")
    assert _reached(net, 9501) == SERVED[1]


def test_a_name_that_stops_resolving_keeps_its_last_address(
    dns: NameServer, forwarder: Daemon
) -> None:
    net = dns.net
    assert _reached(net, 9500) == SERVED[0]
    dns.answer("")  # NXDOMAIN from now on
    forwarder.wait_for_stderr(f"cannot resolve {NAME}", timeout=10)
    for _ in range(3):
        assert _reached(net, 9500) == SERVED[0]
        time.sleep(1)
    assert sum(f"cannot resolve {NAME}" in line for line in forwarder.errors) == 1  # once
    dns.answer(f"{SERVED[0]} {NAME}\n")
    forwarder.wait_for_stderr(f"{NAME} resolves again: {SERVED[0]}", timeout=10)


def test_a_refused_address_gives_way_to_the_name_s_next_one(
    dns: NameServer, request: pytest.FixtureRequest
) -> None:
    net = dns.net
    dns.answer(f"{DEAD} {MULTI}\n{SERVED[1]} {MULTI}\n")
    order = _resolves_to(net, MULTI)
    assert sorted(order) == sorted([DEAD, SERVED[1]]), order
    # Whatever order the resolver gives, the first address is the one that refuses.
    live, dead = order[1], order[0]
    hello_server(net, live, FAILOVER)
    config = f"0 9503 {MULTI} {FAILOVER}\nlogfile LOG\n"
    daemon = start_ours(net, config, request.node.name, "--no-resolve")
    try:
        assert dead != live
        for _ in range(5):  # each connect is refused by the first address, then served
            assert _reached(net, 9503) == live
    finally:
        daemon.stop()


def test_three_failed_connects_in_a_row_look_the_name_up_again(
    dns: NameServer, request: pytest.FixtureRequest
) -> None:
    net = dns.net
    dns.answer(f"{DEAD} {NAME}\n")  # nothing listens there
    config = f"0 9504 {NAME} {HELLO} [dns-refresh=3600]\nlogfile LOG\n"
    daemon = start_ours(net, config, request.node.name, "--no-resolve")
    try:
        time.sleep(1)  # the lookup at start is done (it takes milliseconds)
        dns.answer(f"{SERVED[1]} {NAME}\n")  # the period is an hour: no lookup of its own
        assert [_reached(net, 9504) for _ in range(3)] == ["", "", ""]
        wait_until(lambda: _reached(net, 9504) == SERVED[1], f"{NAME} looked up again", 5)
    finally:
        daemon.stop()


def _kernel_table(net: Topology) -> str:
    shown = net.command("fw", ["nft", "list", "table", "inet", "rinetd_run"])
    return subprocess.run(shown, capture_output=True, text=True, check=False).stdout


def test_the_kernel_s_table_follows_the_name(
    dns: NameServer, request: pytest.FixtureRequest
) -> None:
    net = dns.net
    dns.answer(f"{SERVED[0]} {NAME}\n")
    config = f"dataplane kernel\n0 9510 {NAME} {HELLO} [dns-refresh=1]\n"
    daemon = start_ours(net, config, request.node.name, "--no-resolve")
    try:
        assert _reached(net, 9510) == SERVED[0]
        assert f"dnat ip to {SERVED[0]}:{HELLO}" in _kernel_table(net)
        dns.answer(f"{SERVED[1]} {NAME}\n")
        wait_until(lambda: _reached(net, 9510) == SERVED[1], "the table's new address", 5)
        table = _kernel_table(net)
        assert f"dnat ip to {SERVED[1]}:{HELLO}" in table and SERVED[0] not in table
        daemon.wait_for_stderr("dataplane kernel: the table follows dns-refresh: line 2 to")
        # Forwarded by the kernel, not by rinetd-run's listener.
        shown = net.run("fw", ["ss", "-Htn", "state", "established", "( sport = :9510 )"])
        assert shown.stdout.strip() == ""
    finally:
        daemon.stop()
    assert _kernel_table(net) == ""


def test_a_pool_across_the_namespaces_survives_a_killed_member_and_follows_a_member_s_name(
    dns: NameServer, request: pytest.FixtureRequest
) -> None:
    """Three real backends on the backend host's three addresses, one of them a member
    by name: one killed in the middle of traffic costs no client; the named member then
    follows its name (dns-refresh), and the killed one comes back after its checks."""
    net, port = dns.net, 7300
    with _hello_servers(net, (*SERVED, DEAD), port) as servers:
        dns.answer(f"{SERVED[0]} {NAME}\n")
        config = (
            f"pool web {NAME} {port}\npool web {SERVED[1]} {port}\npool web {DEAD} {port}\n"
            "0 9510 @web [dns-refresh=1, health-interval=1, health-fall=1, health-rise=1]\n"
            "logfile LOG\n"
        )
        daemon = start_ours(net, config, request.node.name, "--no-resolve")
        try:
            assert Counter(_reached(net, 9510) for _ in range(6)) == {a: 2 for a in servers}
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                during = [pool.submit(_reached, net, 9510) for _ in range(16)]
                wait_until(lambda: sum(f.done() for f in during) >= 4, "traffic under way")
                net.stop(servers.pop(DEAD))  # killed mid-traffic
                reached = [f.result() for f in during]
            assert None not in reached, reached  # no client failed
            daemon.wait_for_stderr(f"pool web member {DEAD} {port} is down", timeout=10)
            assert DEAD not in [_reached(net, 9510) for _ in range(6)]
            # The named member follows its name to the dead address, where a server starts again.
            servers[DEAD] = hello_server(net, DEAD, port)
            dns.answer(f"{DEAD} {NAME}\n")
            daemon.wait_for_stderr(f"pool web member {DEAD} {port} is up", timeout=10)
            wait_until(
                lambda: SERVED[0] not in {_reached(net, 9510) for _ in range(6)},
                f"the member {NAME} to follow its name away from {SERVED[0]}",
                timeout=10,
            )
        finally:
            daemon.stop()


def test_a_pool_member_whose_name_does_not_resolve_starts_down_and_comes_up_when_it_does(
    dns: NameServer, request: pytest.FixtureRequest
) -> None:
    """A member's name the name server does not know yet: rinetd-run starts all the same,
    says the member is down and sends its clients to the other member; once the name
    resolves, the member's checks find the address and it takes its share.  In a pool
    without checks (health-interval=0) it comes up at the next reload."""
    net, port, later = dns.net, 7400, f"later.{NAME}"
    with _hello_servers(net, SERVED, port):
        config = "".join(
            f"pool {pool} {later} {port}\npool {pool} {SERVED[1]} {port}\n"
            for pool in ("web", "cold")
        ) + (
            "0 9520 @web [health-interval=1, health-rise=1]\n"
            "0 9521 @cold [health-interval=0]\nlogfile LOG\n"
        )
        daemon = start_ours(net, config, request.node.name, "--no-resolve")
        try:
            for pool in ("web", "cold"):
                daemon.wait_for_stderr(
                    f"pool {pool} member {later} {port} is down: {later} does not resolve"
                )
            assert Counter(_reached(net, 9520) for _ in range(6)) == {SERVED[1]: 6}
            dns.answer(f"{SERVED[0]} {NAME}\n{SERVED[0]} {later}\n")
            daemon.wait_for_stderr(f"pool web member {later} {port} is up", timeout=10)
            assert Counter(_reached(net, 9520) for _ in range(6)) == {a: 3 for a in SERVED}
            assert Counter(_reached(net, 9521) for _ in range(4)) == {SERVED[1]: 4}
            daemon.signal(signal.SIGHUP)
            daemon.wait_for_stderr(f"pool cold member {later} {port} is up: {later} resolves")
            assert Counter(_reached(net, 9521) for _ in range(6)) == {a: 3 for a in SERVED}
            # The name gone again: the next reload is not refused, the member is down.
            dns.answer(f"{SERVED[0]} {NAME}\n")
            daemon.signal(signal.SIGHUP)
            daemon.wait_for_reload(2)
            down = f"pool cold member {later} {port} is down: {later} does not resolve"
            daemon.wait_for_stderr(down, count=2)  # at start, and now
            assert Counter(_reached(net, 9521) for _ in range(4)) == {SERVED[1]: 4}
        finally:
            daemon.stop()


def test_a_pool_member_s_checks_follow_its_name(
    dns: NameServer, request: pytest.FixtureRequest
) -> None:
    """A member by name with dns-refresh: its checks go where its clients go, the name's
    address as the last lookup found it, not the one found at start."""
    net, port = dns.net, 7600
    with _hello_servers(net, SERVED, port) as servers:
        dns.answer(f"{SERVED[0]} {NAME}\n")
        options = "dns-refresh=1, health-interval=1, health-fall=1, health-rise=1"
        config = f"pool web {NAME} {port}\npool web {SERVED[1]} {port}\n0 9530 @web [{options}]\n"
        daemon = start_ours(net, config + "logfile LOG\n", request.node.name, "--no-resolve")
        try:
            assert Counter(_reached(net, 9530) for _ in range(4)) == {a: 2 for a in SERVED}
            # The name moves to an address where nothing listens (the old one still answers):
            # the checks find it out, no client needed.
            dns.answer(f"{DEAD} {NAME}\n")
            daemon.wait_for_stderr(f"pool web member {NAME} {port} is down: check:")
            servers[DEAD] = hello_server(net, DEAD, port)
            daemon.wait_for_stderr(f"pool web member {NAME} {port} is up")
            assert Counter(_reached(net, 9530) for _ in range(4)) == {DEAD: 2, SERVED[1]: 2}
        finally:
            daemon.stop()
