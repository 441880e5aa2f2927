"""The kernel data plane on namespaces: with `dataplane kernel`, nftables on the firewall
forwards the rules it can (TCP, UDP, IPv4, IPv6, src=), only for the clients the access
lines allow; the others reach rinetd-run's listener, which refuses them as before.
IP forwarding turned on for it lets nothing else through, and is put back at exit."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import BIN, compile_config
from tests.integration.conftest import ECHO, UDP_ECHO
from tests.integration.daemons import Daemon, agent, backend_saw
from tests.integration.topology import Topology

C1_FW, C2_FW, C1_FW6 = "10.61.4.1", "10.61.9.1", "fd61:4::1"

CONFIG = f"""\
dataplane kernel
0 8100 10.62.0.2 {ECHO}
0 8101/udp 10.62.0.2 {UDP_ECHO}/udp
{C1_FW} 8102 10.62.0.2 {ECHO} [src=10.62.0.1]
{C1_FW6} 8106 fd62::2 {ECHO}
0 8103 10.62.0.2 {ECHO} [idle-timeout=60]
0 8104 10.62.0.2 {ECHO}
allow 10.61.4.*
"""
FORWARDING = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")


def _start(net: Topology, conf: str, name: str, *flags: str) -> Daemon:
    work = net.workdir / name
    work.mkdir(exist_ok=True)
    rules = compile_config(conf, work)
    process = net.spawn(
        "fw", [str(BIN / "rinetd-run"), str(rules), "--grace", "1", *flags], stderr=subprocess.PIPE
    )
    daemon = Daemon(process, work, rules)
    daemon.wait_for_stderr("rinetd-run: forwarding")
    return daemon


def _table(net: Topology) -> dict[str, int] | None:
    """Each DNAT chain's packet count in table inet rinetd_run; None without the table."""
    done = subprocess.run(
        net.command("fw", ["nft", "-j", "list", "table", "inet", "rinetd_run"]),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    counts: dict[str, int] = {}
    for item in json.loads(done.stdout)["nftables"]:
        rule = item.get("rule")
        if rule and rule["chain"].endswith("_nat"):
            counter = next(e["counter"] for e in rule["expr"] if "counter" in e)
            counts[rule["chain"]] = counter["packets"]
    return counts


def _forwarding(net: Topology) -> list[str]:
    return [net.run("fw", ["cat", path]).stdout.strip() for path in FORWARDING]


def _sockets(net: Topology, port: int) -> int:
    """Established TCP sockets of rinetd-run on the firewall with ``port`` on our side."""
    shown = net.run("fw", ["ss", "-Htn", "state", "established", f"( sport = :{port} )"])
    return len(shown.stdout.splitlines())


@pytest.fixture
def kernel(net: Topology, request: pytest.FixtureRequest) -> Iterator[Daemon]:
    assert _forwarding(net) == ["0", "0"]
    daemon = _start(net, CONFIG, request.node.name)
    yield daemon
    daemon.stop()
    assert _table(net) is None  # removed at exit...
    assert _forwarding(net) == ["0", "0"]  # ...after forwarding was put back


def _echo(net: Topology, role: str, host: str, port: int, *extra: str) -> bool:
    result = agent(net, role, "echo-client", "--host", host, "--port", str(port), *extra)
    return bool(result["error"] is None and result.get("intact"))


def test_the_kernel_forwards_tcp_udp_ipv4_ipv6_and_src(net: Topology, kernel: Daemon) -> None:
    said = [line for line in kernel.errors if "dataplane kernel" in line]
    assert said == [
        "rinetd-run: dataplane kernel: nftables forwards 5 of 6 rules (table inet rinetd_run); "
        "rinetd-run the others"
    ]
    assert _forwarding(net) == ["1", "1"]
    before = _table(net)
    assert before == {f"rule_{n}_nat": 0 for n in (1, 2, 3, 4, 5)}
    assert _echo(net, "c1", C1_FW, 8100, "--size", "300000")
    udp = agent(net, "c1", "udp-client", "--host", C1_FW, "--port", "8101", "--size", "500")
    assert udp == {"error": None, "bytes": 500, "intact": True}
    assert _echo(net, "c1", C1_FW, 8102)
    assert _echo(net, "c1", C1_FW6, 8106)
    after = _table(net)
    assert after is not None and all(after[f"rule_{n}_nat"] >= 1 for n in (1, 2, 3, 4)), after
    # Not through rinetd-run: a held connection has no socket of its on the firewall.
    held = net.spawn(
        "c1",
        ["python3", "-c", _HOLD, C1_FW, "8100"],
        stdout=subprocess.PIPE,
    )
    try:
        assert held.stdout is not None and held.stdout.readline().strip() == b"open"
        assert _sockets(net, 8100) == 0
    finally:
        net.stop(held, signal.SIGKILL)
    # The rule the kernel does not take (idle-timeout) is forwarded by rinetd-run.
    assert _echo(net, "c1", C1_FW, 8103)


_HOLD = """
import socket, sys, time
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
sock.sendall(b"x")
assert sock.recv(1) == b"x"
print("open", flush=True)
time.sleep(30)
"""


def test_refused_clients_reach_rinetd_run_and_the_host_routes_nothing_else(
    net: Topology, kernel: Daemon
) -> None:
    before = _table(net)
    assert before is not None
    # c2 is not allowed on 8104: not DNAT'd, refused by rinetd-run's listener.
    assert not _echo(net, "c2", C2_FW, 8104)
    assert _echo(net, "c1", C1_FW, 8104)
    after = _table(net)
    assert after is not None and after["rule_5_nat"] == before["rule_5_nat"] + 1  # c1 only
    results: list[dict[str, object]] = []

    def through_the_firewall() -> None:
        # Forwarding is on, yet the firewall routes no packet that is not ours: straight
        # to the backend's address (its default route is the firewall), v4 and v6 ...
        for host in ("10.62.0.2", "fd62::2"):
            results.append(
                agent(
                    net, "c1", "tcp-client", "--host", host, "--port", str(ECHO), "--timeout", "2"
                )
            )
        # ... while a rule of ours forwards (the capture is not blind).
        assert _echo(net, "c1", C1_FW, 8100)

    packets = backend_saw(net, ECHO, through_the_firewall)
    assert all(result["error"] is not None for result in results), results
    sources = {packet["src"] for packet in packets}
    assert "10.62.0.1" in sources, packets  # ours, masqueraded
    assert not sources & {"10.61.4.10", "fd61:4::10"}, packets  # nothing routed


def test_a_reload_replaces_the_table_and_dataplane_user_loads_none(
    net: Topology, request: pytest.FixtureRequest
) -> None:
    daemon = _start(net, CONFIG, request.node.name)
    try:
        compile_config(CONFIG.replace("0 8100 ", "0 8110 "), daemon.workdir)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_reload()
        assert _echo(net, "c1", C1_FW, 8110)
        assert not _echo(net, "c1", C1_FW, 8100)  # gone from the table and the listeners
        table = _table(net)
        # The changed rule has a number of its own (its connections are logged by it);
        # the others keep theirs.
        assert table is not None and table["rule_6_nat"] == 1
        assert sorted(table) == [f"rule_{n}_nat" for n in (2, 3, 4, 5, 6)]
    finally:
        daemon.stop()
    user = _start(net, CONFIG, request.node.name + "-user", "--dataplane", "user")
    try:
        assert _table(net) is None and _forwarding(net) == ["0", "0"]
        assert _echo(net, "c1", C1_FW, 8100)
    finally:
        user.stop()


def test_a_killed_run_leaves_a_guarded_table_the_next_one_replaces_and_undoes(
    net: Topology, request: pytest.FixtureRequest
) -> None:
    first = _start(net, CONFIG, request.node.name)
    first.process.kill()
    first.process.wait()
    try:
        # Forwarding stays on, but the table's guard still lets nothing else through.
        assert _forwarding(net) == ["1", "1"]

        def straight_to_the_backend() -> None:
            agent(
                net,
                "c1",
                "tcp-client",
                "--host",
                "10.62.0.2",
                "--port",
                str(ECHO),
                "--timeout",
                "2",
            )

        packets = backend_saw(net, ECHO, straight_to_the_backend)
        assert not {packet["src"] for packet in packets} & {"10.61.4.10"}, packets
        second = _start(net, CONFIG, request.node.name + "-again")
        assert _echo(net, "c1", C1_FW, 8100)
        second.stop()
        assert _table(net) is None
        assert _forwarding(net) == ["0", "0"]  # as before the first run, from its table
    finally:
        for path in FORWARDING:
            net.run("fw", ["sh", "-c", f"echo 0 > {path}"])
        subprocess.run(
            net.command("fw", ["nft", "delete", "table", "inet", "rinetd_run"]),
            capture_output=True,
            check=False,
        )


def test_nft_refusing_the_table_stops_the_start(net: Topology, tmp_path: Path) -> None:
    del tmp_path
    work = net.workdir / "nft-refused"
    work.mkdir()
    rules = compile_config(CONFIG, work)
    # A PATH whose nft always fails: the start stops with what it said.
    fake = work / "bin"
    fake.mkdir()
    (fake / "nft").write_text("#!/bin/sh\necho 'Error: no such thing' >&2\nexit 1\n")
    (fake / "nft").chmod(0o755)
    done = subprocess.run(
        net.command(
            "fw",
            [
                "env",
                f"PATH={fake}:/usr/sbin:/usr/bin:/sbin:/bin",
                str(BIN / "rinetd-run"),
                str(rules),
            ],
        ),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert (
        "cannot load the kernel data plane's table: nft refused the table: Error: no such thing"
        in done.stderr
    )
    assert _forwarding(net) == ["0", "0"]


def test_kernel_cleanup_undoes_what_a_killed_run_left(
    net: Topology, request: pytest.FixtureRequest
) -> None:
    cleanup = net.command("fw", [str(BIN / "rinetd-run"), "--kernel-cleanup"])
    killed = _start(net, CONFIG, request.node.name)
    killed.process.kill()
    killed.process.wait()
    try:
        assert _table(net) is not None and _forwarding(net) == ["1", "1"]
        done = subprocess.run(cleanup, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0 and "removed table inet rinetd_run" in done.stderr
        assert _table(net) is None and _forwarding(net) == ["0", "0"]
        again = subprocess.run(cleanup, capture_output=True, text=True, timeout=30, check=False)
        assert (again.returncode, again.stderr) == (0, "")  # nothing left: nothing said
    finally:
        for path in FORWARDING:
            net.run("fw", ["sh", "-c", f"echo 0 > {path}"])


def test_a_wildcard_ipv6_bind_s_ipv6_clients_are_the_kernel_s_its_ipv4_ones_rinetd_run_s(
    net: Topology, request: pytest.FixtureRequest
) -> None:
    daemon = _start(net, f"dataplane kernel\n:: 8107 fd62::2 {ECHO}\n", request.node.name)
    try:
        assert _echo(net, "c1", C1_FW6, 8107) and _echo(net, "c1", C1_FW, 8107)
        for address, ours in ((C1_FW6, 0), (C1_FW, 1)):
            held = net.spawn(
                "c1", ["python3", "-c", _HOLD, address, "8107"], stdout=subprocess.PIPE
            )
            try:
                assert held.stdout is not None and held.stdout.readline().strip() == b"open"
                assert _sockets(net, 8107) == ours, address  # rinetd-run's, or none
            finally:
                net.stop(held, signal.SIGKILL)
    finally:
        daemon.stop()
