"""Pools run for real on loopback: three or more real backends on their own addresses,
rinetd-run choosing among them, failing over, checking their health, keeping it across a
reload, logging and exporting each member."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import compile_config, wait_until
from tests.runtime.harness import (
    Forwarder,
    TcpEcho,
    UdpEcho,
    connect_from,
    echo_once,
    free_port,
    running,
)


@pytest.fixture
def members() -> Iterator[list[TcpEcho]]:
    servers = [TcpEcho(host=f"127.0.1.{n}").start() for n in (1, 2, 3)]
    yield servers
    for server in servers:
        server.stop()


def _pool(servers: list[TcpEcho], options: list[str] | None = None, name: str = "web") -> str:
    options = options or [""] * len(servers)
    return "".join(
        f"pool {name} {s.host} {s.port}{' [' + o + ']' if o else ''}\n"
        for s, o in zip(servers, options, strict=True)
    )


def _held(port: int) -> socket.socket:
    """A connection through ``port`` that has been answered once, left open."""
    sock = connect_from("127.0.0.1", port)
    sock.sendall(b"x")
    assert sock.recv(1) == b"x"
    return sock


def test_weights_hold_and_each_log_line_names_its_member(
    members: list[TcpEcho], tmp_path: Path
) -> None:
    port = free_port()
    text = _pool(members, ["weight=1", "weight=2", "weight=5"]) + (
        f"logfile {tmp_path / 'rinetd.log'}\n127.0.0.1 {port} @web [health-interval=0]\n"
    )
    with running(text, tmp_path) as forwarder:
        for _ in range(400):
            assert echo_once(port) == b"ping"
        lines = forwarder.log_lines(800)
    counts = [m.accepted for m in members]
    assert sum(counts) == 400
    for got, weight in zip(counts, (1, 2, 5), strict=True):
        assert abs(got - 400 * weight / 8) <= 400 * 0.03, counts
    done = [line.split("\t") for line in lines if line.endswith("done-remote-closed")]
    by_member = Counter((fields[4], fields[5]) for fields in done)
    assert by_member == {(m.host, str(m.port)): m.accepted for m in members}


def test_a_dead_member_costs_no_client_and_is_said_down(
    members: list[TcpEcho], tmp_path: Path
) -> None:
    port = free_port()
    dead = members[1]
    dead.stop()  # refused from now on
    text = _pool(members) + (
        f"logfile {tmp_path / 'rinetd.log'}\nlogjson\n"
        f"127.0.0.1 {port} @web [health-interval=0, health-fall=2]\n"
    )
    with running(text, tmp_path) as forwarder:
        for _ in range(60):
            assert echo_once(port) == b"ping"
        forwarder.wait_for_stderr(f"pool web member {dead.host} {dead.port} is down")
        lines = forwarder.wait_for_log('"event":"member-down"')
    assert members[0].accepted + members[2].accepted == 60
    events = [json.loads(line) for line in lines if '"event"' in line]
    assert [(e["event"], e["member"], e["member_port"]) for e in events] == [
        ("member-down", dead.host, dead.port)
    ]
    # Once down, it is no longer tried: failed connects stop at health-fall.
    assert sum("Connection refused" in e for e in forwarder.errors) <= 1


def test_backups_serve_only_when_every_other_member_is_down(tmp_path: Path) -> None:
    primary = TcpEcho(host="127.0.1.1").start()
    backup = TcpEcho(host="127.0.1.2").start()
    port = free_port()
    text = (
        f"pool web {primary.host} {primary.port}\n"
        f"pool web {backup.host} {backup.port} [backup]\n"
        f"logfile {tmp_path / 'rinetd.log'}\n"
        f"127.0.0.1 {port} @web [health-interval=1, health-fall=1, health-rise=1]\n"
    )

    def served(forwarder: Forwarder, count: int) -> list[str]:
        """The member of each of the last ``count`` connections (health checks connect
        to the members too, so the backends' own counts would include them)."""
        lines = forwarder.log_lines(2 * count)
        return [line.split("\t")[4] for line in lines if line.endswith("closed")][-count:]

    try:
        with running(text, tmp_path) as forwarder:
            for _ in range(20):
                assert echo_once(port) == b"ping"
            assert served(forwarder, 20) == [primary.host] * 20
            primary.stop()
            forwarder.wait_for_stderr(f"member {primary.host} {primary.port} is down", timeout=5)
            for _ in range(10):
                assert echo_once(port) == b"ping"
            assert served(forwarder, 30)[20:] == [backup.host] * 10
            # The primary back on its port: after health-rise checks it takes over again.
            again = TcpEcho(host=primary.host, port=primary.port).start()
            try:
                forwarder.wait_for_stderr(f"member {primary.host} {primary.port} is up", timeout=5)
                for _ in range(10):
                    assert echo_once(port) == b"ping"
                assert served(forwarder, 40)[30:] == [primary.host] * 10
            finally:
                again.stop()
    finally:
        primary.stop()
        backup.stop()


def test_source_keeps_a_client_on_its_member_and_moves_only_a_lost_member_s_clients(
    tmp_path: Path,
) -> None:
    servers = [TcpEcho(host=f"127.0.1.{n}").start() for n in (1, 2, 3, 4)]
    port = free_port()
    text = _pool(servers) + (
        f"logfile {tmp_path / 'rinetd.log'}\n"
        f"127.0.0.1 {port} @web [balance=source, health-interval=1, health-fall=1]\n"
    )
    clients = [f"127.0.2.{n}" for n in range(1, 121)]

    def members_of_clients(log: Path, total: int, count: int) -> dict[str, str]:
        """Client -> member of the last ``count`` connections, once ``total`` have ended."""

        def done() -> list[str]:
            lines = log.read_text().splitlines() if log.exists() else []
            ended = [line for line in lines if line.endswith("closed")]
            return ended[total - count : total] if len(ended) >= total else []

        lines = wait_until(done, f"{total} done lines")
        return {line.split("\t")[1]: line.split("\t")[4] for line in lines}

    try:
        with running(text, tmp_path) as forwarder:
            for client in clients:
                assert echo_once(port, source=client) == b"ping"
            first = members_of_clients(forwarder.log, 120, 120)
            for client in clients[:20]:  # again: the same member
                assert echo_once(port, source=client) == b"ping"
            again = members_of_clients(forwarder.log, 140, 20)
            assert all(first[c] == again[c] for c in clients[:20])
            assert len(set(first.values())) == 4
            lost = servers[2]
            lost.stop()
            forwarder.wait_for_stderr(f"member {lost.host} {lost.port} is down", timeout=5)
            for client in clients:
                assert echo_once(port, source=client) == b"ping"
            after = members_of_clients(forwarder.log, 260, 120)
        moved = [c for c in clients if first[c] != after[c]]
        assert moved and all(first[c] == lost.host for c in moved)
        assert len(moved) == sum(1 for c in clients if first[c] == lost.host)
        assert 120 / 4 * 0.5 <= len(moved) <= 120 / 4 * 1.6  # about 1/N of them
    finally:
        for server in servers:
            server.stop()


def test_leastconn_sends_less_to_a_member_that_holds_connections(
    members: list[TcpEcho], tmp_path: Path
) -> None:
    port = free_port()
    text = _pool(members) + f"127.0.0.1 {port} @web [balance=leastconn, health-interval=0]\n"
    with running(text, tmp_path):
        held = []
        for _ in range(3):  # three slow clients, one on each member
            held.append(_held(port))
        slow = members[0].accepted + members[1].accepted + members[2].accepted
        assert slow == 3
        # Hold five more: they spread so that no member holds two more than another.
        for _ in range(5):
            held.append(_held(port))
        counts = sorted(m.accepted for m in members)
        assert counts[-1] - counts[0] <= 1, counts
        for sock in held:
            sock.close()


def test_a_full_member_is_skipped_and_all_full_is_limit_exceeded(
    members: list[TcpEcho], tmp_path: Path
) -> None:
    port = free_port()
    text = _pool(members[:2], ["max-connections=1", "max-connections=2"]) + (
        f"logfile {tmp_path / 'rinetd.log'}\n127.0.0.1 {port} @web [health-interval=0]\n"
    )
    with running(text, tmp_path) as forwarder:
        held = []
        for _ in range(3):
            held.append(_held(port))
        assert (members[0].accepted, members[1].accepted) == (1, 2)
        refused = connect_from("127.0.0.1", port)
        assert refused.recv(1) == b""
        lines = forwarder.wait_for_log("limit-exceeded")
        assert lines[-1].split("\t")[4:6] == ["@web", "0"]
        held.pop().close()

        def served() -> bool:
            try:
                return echo_once(port) == b"ping"
            except OSError:  # still full: refused
                return False

        wait_until(served, "a member with room again")
        for sock in held:
            sock.close()


def test_a_reload_keeps_the_health_of_members_it_keeps(
    members: list[TcpEcho], tmp_path: Path
) -> None:
    port, metrics = free_port(), free_port()
    dead = members[0]
    dead.stop()
    head = f"metrics 127.0.0.1 {metrics}\n"
    rule = f"127.0.0.1 {port} @web [health-interval=0, health-fall=1]\n"
    text = head + _pool(members) + rule
    with running(text, tmp_path) as forwarder:
        for _ in range(6):
            assert echo_once(port) == b"ping"
        forwarder.wait_for_stderr(f"member {dead.host} {dead.port} is down")
        # Reweight another member: the dead one stays down (no connect is tried on it).
        text = head + _pool(members, ["", "weight=3", ""]) + rule
        compile_config(text, tmp_path)
        forwarder.signal(signal.SIGHUP)
        forwarder.wait_for_reload()
        for _ in range(8):
            assert echo_once(port) == b"ping"
        assert sum("is down" in line for line in forwarder.errors) == 1
        assert (members[1].accepted, members[2].accepted) == (3 + 6, 3 + 2)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as page:
            body = page.read().decode()
    labels = f'pool="web",member="{dead.host}",port="{dead.port}"'
    assert f"rinetd_run_pool_member_up{{{labels}}} 0" in body
    assert f"rinetd_run_pool_member_connect_failures_total{{{labels}}} 1" in body
    live = f'pool="web",member="{members[1].host}",port="{members[1].port}"'
    assert f"rinetd_run_pool_member_connections_total{{{live}}} 9" in body
    assert f"rinetd_run_pool_member_connections_open{{{live}}} 0" in body


def test_a_udp_session_stays_on_the_member_it_started_with(tmp_path: Path) -> None:
    servers = [UdpEcho(host=f"127.0.1.{n}").start() for n in (1, 2, 3)]
    port = free_port(socket.SOCK_DGRAM)
    text = "".join(f"pool dns {s.host} {s.port}\n" for s in servers) + (
        f"logfile {tmp_path / 'rinetd.log'}\n127.0.0.1 {port}/udp @dns\n"
    )
    try:
        with running(text, tmp_path):
            clients = []
            for _ in range(3):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.settimeout(5)
                clients.append(sock)
            for round_ in range(4):
                for sock in clients:
                    sock.sendto(b"q%d" % round_, ("127.0.0.1", port))
                    assert sock.recv(100) == b"q%d" % round_
            sizes = [len(s.received) for s in servers]
            assert sorted(sizes) == [4, 4, 4], sizes  # one client on each, all its datagrams
            for sock in clients:
                sock.close()
    finally:
        for server in servers:
            server.stop()


def test_a_blackholed_member_is_passed_over_within_health_timeout(tmp_path: Path) -> None:
    """A member that never answers a connect: the client waits health-timeout, not
    connect-timeout, then gets the next member."""
    live = TcpEcho(host="127.0.1.2").start()
    # A listening socket whose backlog is full never completes a handshake.
    stuck = socket.socket()
    stuck.bind(("127.0.1.1", 0))
    stuck.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(stuck.getsockname())
        fillers.append(filler)
    time.sleep(0.2)
    port = free_port()
    text = (
        f"pool web 127.0.1.1 {stuck.getsockname()[1]}\npool web {live.host} {live.port}\n"
        f"127.0.0.1 {port} @web [connect-timeout=30, health-timeout=1, health-interval=0]\n"
    )
    try:
        with running(text, tmp_path):
            started = time.monotonic()
            for _ in range(2):
                assert echo_once(port) == b"ping"
            assert time.monotonic() - started < 10
            assert live.accepted == 2
    finally:
        live.stop()
        stuck.close()
        for filler in fillers:
            filler.close()


def test_a_check_can_send_a_text_and_expect_the_answer_to_begin_with_another(
    members: list[TcpEcho], tmp_path: Path
) -> None:
    """The members echo: a check sending PING and expecting PING passes, one expecting
    PONG fails and takes its member out."""
    good, bad = free_port(), free_port()
    text = (
        f"pool good {members[0].host} {members[0].port}\n"
        f"pool bad {members[1].host} {members[1].port}\n"
        f'127.0.0.1 {good} @good [health-interval=1, health-fall=2, health-send="PING\\r\\n",'
        ' health-expect="PING\\r"]\n'
        f'127.0.0.1 {bad} @bad [health-interval=1, health-fall=2, health-send="PING\\r\\n",'
        ' health-expect="PONG"]\n'
    )
    with running(text, tmp_path) as forwarder:
        forwarder.wait_for_stderr(f"pool bad member {members[1].host} {members[1].port} is down")
        assert any("not the expected text" in line for line in forwarder.errors)
        wait_until(lambda: members[0].accepted >= 2, "two checks of the good member")
        assert not any("pool good" in line for line in forwarder.errors)
        assert echo_once(good) == b"ping"


def test_a_pool_whose_only_member_refuses_fails_its_clients_as_a_refusing_backend(
    tmp_path: Path,
) -> None:
    port, nobody = free_port(), free_port()
    text = (
        f"pool web 127.0.0.1 {nobody}\nlogfile {tmp_path / 'rinetd.log'}\n"
        f"127.0.0.1 {port} @web [health-interval=0, health-fall=1]\n"
    )
    with running(text, tmp_path) as forwarder:
        for _ in range(2):
            with connect_from("127.0.0.1", port) as sock:
                assert sock.recv(10) == b""
        forwarder.wait_for_stderr(f"pool web member 127.0.0.1 {nobody} is down")
        lines = forwarder.log_lines(4)
        assert [line.split("\t")[-1] for line in lines] == ["opened", "done-local-closed"] * 2
        assert not any("Traceback" in line for line in forwarder.errors)
        assert forwarder.process.poll() is None


def test_a_pool_rule_takes_a_plain_rule_s_options(members: list[TcpEcho], tmp_path: Path) -> None:
    """proxy-protocol and max-connections on a pool rule: the member gets the header (the
    echo sends it back), and a second connection is over the rule's limit."""
    port = free_port()
    text = _pool(members) + (
        f"logfile {tmp_path / 'rinetd.log'}\n"
        f"127.0.0.1 {port} @web [proxy-protocol=v1, max-connections=1, health-interval=0]\n"
    )
    with running(text, tmp_path) as forwarder:
        with connect_from("127.0.0.2", port) as first:
            first.sendall(b"hi")
            got = b""
            while not got.endswith(b"hi"):
                got += first.recv(100)
            assert got.startswith(b"PROXY TCP4 127.0.0.2 127.0.0.1 ")
            with connect_from("127.0.0.3", port) as second:
                assert second.recv(10) == b""
            forwarder.wait_for_log("limit-exceeded")
