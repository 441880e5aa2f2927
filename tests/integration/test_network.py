"""End to end on namespaces: clients, a firewall running rinetd-run, a backend."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import compile_config, parse_tab
from tests.integration.conftest import AGENT, ECHO, ECHO_GUARDED, HTTP, UDP_ECHO
from tests.integration.daemons import Daemon, agent, backend_saw, start_ours
from tests.integration.topology import Topology, leftovers

C1_FW, C2_FW = "10.61.4.1", "10.61.9.1"  # the firewall as each client sees it
C1_FW6, C2_FW6 = "fd61:4::1", "fd61:9::1"

CONFIG = f"""\
# the firewall: partners (10.61.4.*) get everything, others only some rules
allow 10.61.*
allow fd61:*
0 8000 10.62.0.2 {ECHO}
0 www 10.62.0.2 {HTTP}
allow 10.61.4.*
0 telnet 10.62.0.2 ssh
0 8003 10.62.0.2 {ECHO_GUARDED}
allow 10.61.?.*
deny 10.61.9.20
0 8001/udp 10.62.0.2 {UDP_ECHO}/udp [timeout=5]
0 8002 10.62.0.2 {UDP_ECHO}/udp
:: 8006 fd62::2 {ECHO}
allow fd61:4::*
logfile LOG
"""


@pytest.fixture
def ours(net: Topology, request: pytest.FixtureRequest) -> Iterator[Daemon]:
    daemon = start_ours(net, CONFIG, request.node.name)
    yield daemon
    daemon.stop()


def _peers(net: Topology, port: int | str) -> list[str]:
    path = net.workdir / f"peers-{port}"
    return path.read_text().split() if path.exists() else []


def test_redirection_tcp_ipv4_with_payload_integrity(net: Topology, ours: Daemon) -> None:
    before = len(_peers(net, ECHO))
    result = agent(net, "c1", "tcp-client", "--host", C1_FW, "--port", "8000", "--size", "3000000")
    assert result == {"error": None, "bytes": 3000000, "intact": True}
    # The backend sees the firewall's inside address, not the client's.
    assert _peers(net, ECHO)[before:] == ["::ffff:10.62.0.1"]
    opened, done = (parse_tab(line) for line in ours.log_lines(2))
    assert (opened["client"], opened["bind_host"], opened["bind_port"]) == (
        "10.61.4.10",
        "0",
        "8000",
    )
    assert (done["connect_host"], done["connect_port"]) == ("10.62.0.2", str(ECHO))
    assert (done["bytes_in"], done["bytes_out"], done["result"]) == (
        "3000000",
        "3000000",
        "done-remote-closed",
    )


def test_clients_cannot_reach_the_backend_directly(net: Topology, ours: Daemon) -> None:
    for role in ("c1", "c2"):
        result = agent(
            net, role, "tcp-client", "--host", "10.62.0.2", "--port", str(ECHO), "--timeout", "2"
        )
        assert result["error"] is not None


def test_service_names_www_and_telnet_to_ssh(net: Topology, ours: Daemon) -> None:
    page = agent(net, "c1", "http-get", "--url", f"http://{C1_FW}/index.html")
    assert page == {"error": None, "status": 200, "bytes": 5000}
    ssh = agent(net, "c1", "tcp-client", "--host", C1_FW, "--port", "23", "--size", "100")
    assert ssh["intact"] is True
    assert _peers(net, 22)[-1] == "::ffff:10.62.0.1"
    lines = [parse_tab(line) for line in ours.log_lines(4)]
    assert [(d["bind_port"], d["connect_port"], d["result"]) for d in lines] == [
        ("80", str(HTTP), "opened"),
        ("80", str(HTTP), "done-local-closed"),  # the web server closes first
        ("23", "22", "opened"),
        ("23", "22", "done-remote-closed"),
    ]


def test_ipv6_redirection(net: Topology, ours: Daemon) -> None:
    result = agent(net, "c1", "tcp-client", "--host", C1_FW6, "--port", "8006", "--size", "70000")
    assert result["intact"] is True
    assert _peers(net, ECHO)[-1] == "fd62::1"
    assert agent(net, "c2", "tcp-client", "--host", C2_FW6, "--port", "8006")["bytes"] == 0
    lines = [parse_tab(line) for line in ours.log_lines(3)]
    assert [(d["client"], d["result"]) for d in lines] == [
        ("fd61:4::10", "opened"),
        ("fd61:4::10", "done-remote-closed"),
        ("fd61:9::20", "not-allowed"),
    ]


def test_udp_and_tcp_to_udp(net: Topology, ours: Daemon) -> None:
    for size in (1, 1400, 60000):
        result = agent(
            net, "c1", "udp-client", "--host", C1_FW, "--port", "8001", "--size", str(size)
        )
        assert result == {"error": None, "bytes": size, "intact": True}
    mixed = agent(net, "c2", "echo-client", "--host", C2_FW, "--port", "8002", "--size", "500")
    assert mixed == {"error": None, "bytes": 500, "intact": True}
    assert set(_peers(net, "udp")) == {"::ffff:10.62.0.1"}


def test_allow_and_deny_per_client_host(net: Topology, ours: Daemon) -> None:
    cases = [
        ("c1", C1_FW, "80", True),  # partner on www
        ("c2", C2_FW, "80", False),  # www is for partners only
        ("c1", C1_FW, "8003", True),  # 10.61.?.* lets both in...
        ("c2", C2_FW, "8003", False),  # ...but 10.61.9.20 is denied
        ("c2", C2_FW, "8000", True),  # global allow 10.61.*
    ]
    guarded_before = len(_peers(net, ECHO_GUARDED))
    for role, host, port, allowed in cases:
        if port == "80":
            result = agent(net, role, "http-get", "--url", f"http://{host}/")
            got_through = result["error"] is None
        else:
            result = agent(net, role, "echo-client", "--host", host, "--port", port, "--size", "10")
            got_through = result["error"] is None and result["bytes"] == 10
        assert got_through is allowed, (role, port, result)
    assert len(_peers(net, ECHO_GUARDED)) == guarded_before + 1  # c2 never reached it
    results = [
        (d["client"], d["bind_port"], d["result"]) for d in map(parse_tab, ours.log_lines(8))
    ]
    assert ("10.61.9.20", "80", "not-allowed") in results
    assert ("10.61.9.20", "8003", "denied") in results


def _captured(net: Topology, role: str, host: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A client's echo exchange on the guarded rule, and the packets the backend link saw."""
    result: dict[str, Any] = {}

    def exchange() -> None:
        args = ["echo-client", "--host", host, "--port", "8003", "--size", "10"]
        result.update(agent(net, role, *args))

    packets = backend_saw(net, ECHO_GUARDED, exchange)
    return result, packets


def test_denied_client_sends_nothing_to_the_backend(net: Topology, ours: Daemon) -> None:
    """Captured with scapy on the backend's link: a denied connection makes zero packets."""
    denied, packets = _captured(net, "c2", C2_FW)
    assert denied["bytes"] == 0
    assert packets == []
    # The same capture sees an allowed client's connection: the probe is not blind.
    _allowed, packets = _captured(net, "c1", C1_FW)
    assert any(p["flags"] == "S" and p["src"] == "10.62.0.1" for p in packets)


def test_crafted_syn_from_a_denied_client(net: Topology, ours: Daemon) -> None:
    """On the wire: the firewall completes the handshake, then closes at once."""
    sport = "40404"
    drop_rst = [
        "iptables",
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "--sport",
        sport,
        "--tcp-flags",
        "RST",
        "RST",
        "-j",
        "DROP",
    ]
    net.run("c2", drop_rst)
    try:
        seen = agent(net, "c2", "handshake", "--host", C2_FW, "--port", "8003", "--sport", sport)
    finally:
        net.run("c2", ["iptables", "-D", *drop_rst[2:]])
    flags = seen["flags"]
    assert flags[0] == "SA"  # the kernel accepted it: rinetd-run decides after accept
    assert any("F" in f or "R" in f for f in flags[1:]), flags
    lines = [parse_tab(line) for line in ours.log_lines(1)]
    assert (lines[-1]["client"], lines[-1]["result"]) == ("10.61.9.20", "denied")


def test_reload_under_traffic(net: Topology, ours: Daemon) -> None:
    streamer = net.spawn(
        "c1",
        [sys.executable, AGENT, "stream", "--host", C1_FW, "--port", "8000", "--seconds", "3"],
        stdout=subprocess.PIPE,
    )
    prober = net.spawn(
        "c2",
        [sys.executable, AGENT, "probe", "--host", C2_FW, "--port", "8000", "--seconds", "3"],
        stdout=subprocess.PIPE,
    )
    time.sleep(1)
    work = ours.log.parent
    changed = CONFIG.replace("logfile LOG", f"0 8009 10.62.0.2 {ECHO}\nlogfile LOG")
    compile_config(changed, work)
    ours.process.send_signal(signal.SIGHUP)
    ours.wait_for_reload()

    assert streamer.stdout is not None and prober.stdout is not None
    streamed = json.loads(streamer.stdout.read())
    probed = json.loads(prober.stdout.read())
    assert streamed["error"] is None and streamed["chunks"] > 10
    assert probed["tries"] > 10 and probed["refused"] == 0
    added = agent(net, "c1", "echo-client", "--host", C1_FW, "--port", "8009", "--size", "10")
    assert added["intact"] is True


def test_common_log_format_end_to_end(net: Topology, request: pytest.FixtureRequest) -> None:
    daemon = start_ours(net, CONFIG + "logcommon\n", request.node.name)
    try:
        agent(net, "c1", "echo-client", "--host", C1_FW, "--port", "8000", "--size", "321")
        agent(net, "c2", "echo-client", "--host", C2_FW, "--port", "8003", "--size", "5")
        lines = daemon.log_lines(3)
    finally:
        daemon.stop()
    pattern = re.compile(
        r"(?P<client>\S+) - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d  [-+]\d{4}\] "
        r'"GET /rinetd-services/(?P<bind>[^/]+)/(?P<port>\d+)/(?P<to>[^/]+)/(?P<to_port>\d+)/'
        r'(?P<result>[^"]+) HTTP/1\.0" 200 (?P<out>\d+) - - - (?P<inn>\d+)'
    )
    parsed = [pattern.fullmatch(line) for line in lines]
    assert all(parsed), lines
    found = [(m["client"], m["port"], m["result"], m["out"], m["inn"]) for m in parsed if m]
    assert found == [
        ("10.61.4.10", "8000", "opened", "0", "0"),
        ("10.61.4.10", "8000", "done-remote-closed", "321", "321"),
        ("10.61.9.20", "8003", "denied", "0", "0"),
    ]


def test_teardown_leaves_no_namespace_link_or_process() -> None:
    """A topology of its own, with a process in it, is removed without a trace."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    topology = Topology(prefix=f"rdt{os.getpid() % 100000}")
    try:
        topology.create()
        sleeper = topology.spawn("fw", ["sleep", "600"])
        # four namespaces; the veths live inside them, none in the root namespace
        assert sorted(leftovers(topology.prefix)) == sorted(
            topology.namespace(role) for role in ("c1", "c2", "fw", "be")
        )
    finally:
        topology.destroy()
    assert leftovers(topology.prefix) == []
    assert sleeper.poll() is not None
