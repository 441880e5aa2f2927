"""Pools across the namespaces: clients in their namespace, rinetd-run on the firewall,
three real backends on three addresses of the backend host (each says its address,
then echoes), as a gateway would run them.  Weights over thousands of connections,
source hashing with 64 client addresses and a member that dies, leastconn and members
that hold connections, a full member, backups and rise, and a reload that keeps the
health of the members it keeps.  (The same behaviours on loopback, with more detail,
are tests/runtime/test_pools.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import compile_config, wait_until
from tests.integration.conftest import AGENT
from tests.integration.daemons import Daemon, agent, hello_server, start_ours
from tests.integration.topology import Topology

C1_FW = "10.61.4.1"  # the firewall, as client 1 sees it
MEMBERS = ("10.62.0.5", "10.62.0.6", "10.62.0.7")  # backend host addresses of this module
SOURCES = tuple(f"10.61.4.{n}" for n in range(100, 164))  # client 1's extra addresses
PORT = 7500


class Backends:
    """A hello server on each member address, stopped and started by the test."""

    def __init__(self, net: Topology) -> None:
        self.net = net
        self.servers: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, address: str) -> None:
        self.servers[address] = hello_server(self.net, address, PORT)

    def stop(self, address: str) -> None:
        self.net.stop(self.servers.pop(address))


@pytest.fixture(scope="module")
def addresses(net: Topology) -> Iterator[Topology]:
    added: list[tuple[str, str, str]] = []
    try:
        for address in MEMBERS:
            added.append(("be", f"{address}/24", net.interface("be")))
            net.run("be", ["ip", "addr", "add", *added[-1][1:2], "dev", added[-1][2]])
        for address in SOURCES:
            added.append(("c1", f"{address}/24", net.interface("c1")))
            net.run("c1", ["ip", "addr", "add", *added[-1][1:2], "dev", added[-1][2]])
        yield net
    finally:
        for role, address, device in added:
            command = net.command(role, ["ip", "addr", "del", address, "dev", device])
            subprocess.run(command, capture_output=True, check=False)


@pytest.fixture
def backends(addresses: Topology) -> Iterator[Backends]:
    servers = Backends(addresses)
    try:
        for address in MEMBERS:
            servers.start(address)
        yield servers
    finally:
        for address in list(servers.servers):
            servers.stop(address)


def _pool(options: tuple[str, str, str] = ("", "", "")) -> str:
    return "".join(
        f"pool web {address} {PORT}{f' [{option}]' if option else ''}\n"
        for address, option in zip(MEMBERS, options, strict=True)
    )


def _hellos(net: Topology, port: int, count: int, sources: tuple[str, ...] = ()) -> Any:
    args = ["hellos", "--host", C1_FW, "--port", str(port), "--count", str(count)]
    found = agent(net, "c1", *args, "--sources", ",".join(sources))
    assert found["errors"] == 0, found
    return found


def _forwarder(net: Topology, text: str, request: pytest.FixtureRequest) -> Daemon:
    return start_ours(net, text + "logfile LOG\n", request.node.name)


def _held(net: Topology, port: int, trigger: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A connection through ``port`` left open until ``trigger`` exists; its backend."""
    args = ["hello", "--host", C1_FW, "--port", str(port), "--hold", str(trigger)]
    process = net.spawn(
        "c1", [sys.executable, AGENT, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())["backend"]


def _done(daemon: Daemon) -> int:
    """Connections the forwarder has logged as ended."""
    text = daemon.log.read_text() if daemon.log.exists() else ""
    return sum("\tdone-" in line for line in text.splitlines())


def _released(daemon: Daemon, trigger: Path, held: list[subprocess.Popen[bytes]]) -> None:
    """The held connections let go, and seen ended by the forwarder (not only by the
    client) before the next connections are counted."""
    before = _done(daemon)
    trigger.write_text("")
    for process in held:
        process.wait(timeout=15)
    wait_until(lambda: _done(daemon) >= before + len(held), "the held connections' ends")


def test_weights_hold_over_thousands_of_connections(
    backends: Backends, request: pytest.FixtureRequest
) -> None:
    net = backends.net
    text = _pool(("weight=1", "weight=2", "weight=3")) + "0 9600 @web [health-interval=0]\n"
    daemon = _forwarder(net, text, request)
    try:
        counts = _hellos(net, 9600, 3000)["counts"]
    finally:
        daemon.stop()
    for address, share in zip(MEMBERS, (500, 1000, 1500), strict=True):
        assert abs(counts[address] - share) <= share * 0.03, counts


def test_source_hashing_keeps_each_client_and_moves_only_a_dead_member_s(
    backends: Backends, request: pytest.FixtureRequest
) -> None:
    net = backends.net
    options = "balance=source, health-interval=1, health-fall=1"
    daemon = _forwarder(net, _pool() + f"0 9601 @web [{options}]\n", request)
    try:
        first = _hellos(net, 9601, len(SOURCES), SOURCES)["last"]
        again = _hellos(net, 9601, 2 * len(SOURCES), SOURCES)["last"]
        assert again == first  # every client stays on its member
        assert set(first.values()) == set(MEMBERS)  # and the clients are spread
        lost = MEMBERS[1]
        backends.stop(lost)
        daemon.wait_for_stderr(f"pool web member {lost} {PORT} is down")
        after = _hellos(net, 9601, len(SOURCES), SOURCES)["last"]
    finally:
        daemon.stop()
    moved = {source for source in SOURCES if after[source] != first[source]}
    assert moved == {source for source in SOURCES if first[source] == lost}
    assert len(SOURCES) / 6 <= len(moved) <= len(SOURCES) / 2  # about 1/N of them


def test_leastconn_sends_new_clients_to_the_member_that_holds_none(
    backends: Backends, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    net = backends.net
    daemon = _forwarder(net, _pool() + "0 9602 @web [balance=leastconn]\n", request)
    trigger = tmp_path / "let-go"
    held: list[subprocess.Popen[bytes]] = []
    try:
        holding = set()
        for _ in range(2):
            process, backend = _held(net, 9602, trigger)
            held.append(process)
            holding.add(backend)
        assert len(holding) == 2  # the second went to a member with none open
        (free,) = set(MEMBERS) - holding
        assert _hellos(net, 9602, 12)["counts"] == {free: 12}
        _released(daemon, trigger, held)
        assert sorted(_hellos(net, 9602, 12)["counts"].values()) == [4, 4, 4]
    finally:
        trigger.write_text("")
        for process in held:
            net.stop(process)
        daemon.stop()


def test_a_full_member_is_skipped_and_backups_serve_only_when_the_others_are_down(
    backends: Backends, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    net = backends.net
    one, two, spare = MEMBERS
    options = "health-interval=1, health-fall=1, health-rise=2"
    text = _pool(("max-connections=1", "", "backup")) + f"0 9603 @web [{options}]\n"
    daemon = _forwarder(net, text, request)
    trigger = tmp_path / "let-go"
    held = None
    try:
        held, backend = _held(net, 9603, trigger)  # round robin starts with the first
        assert backend == one
        assert _hellos(net, 9603, 8)["counts"] == {two: 8}  # one is full, spare a backup
        _released(daemon, trigger, [held])
        assert _hellos(net, 9603, 8)["counts"] == {one: 4, two: 4}
        backends.stop(one)
        backends.stop(two)
        for address in (one, two):
            daemon.wait_for_stderr(f"pool web member {address} {PORT} is down")
        assert _hellos(net, 9603, 8)["counts"] == {spare: 8}
        backends.start(two)
        daemon.wait_for_stderr(f"pool web member {two} {PORT} is up")  # after 2 checks
        assert _hellos(net, 9603, 8)["counts"] == {two: 8}
    finally:
        trigger.write_text("")
        if held is not None:
            net.stop(held)
        daemon.stop()


def test_a_reload_that_changes_one_member_keeps_the_others_health(
    backends: Backends, request: pytest.FixtureRequest
) -> None:
    net = backends.net
    dead, kept, changed = MEMBERS
    # No active checks: nothing but its state can keep the member out after the reload.
    options = "health-interval=0, health-fall=1"
    daemon = _forwarder(net, _pool() + f"0 9604 @web [{options}]\n", request)
    try:
        backends.stop(dead)
        # Its clients' failed connects take it out (health-fall=1), not a check.
        _hellos(net, 9604, 6)
        daemon.wait_for_stderr(f"pool web member {dead} {PORT} is down")
        backends.start(dead)
        text = _pool(("", "", "weight=3")) + f"0 9604 @web [{options}]\nlogfile LOG\n"
        compile_config(text, daemon.workdir)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_stderr("reloaded")
        counts = Counter(_hellos(net, 9604, 8)["counts"])
    finally:
        daemon.stop()
    # Still down though it answers again (a fresh state would be up); the reweighted
    # member takes three shares to the kept one's one.
    assert counts == {changed: 6, kept: 2}, counts
