"""The role's service under a real systemd: a machine booted for each test
(``machine.py``), the play run inside it with ``rinetd_manage_service: true``, and the
service driven and inspected through the machine's own systemctl, journal and /proc.

The play runs inside the machine (``nsenter`` into all its namespaces), not on the
host against its root: the role's paths are then the ones the unit names, systemctl
talks to the machine's systemd, and the controller tasks see the same files.  Needs
root: skipped with the reason outside CI, a failure in CI (``CI=true``).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.ansible.conftest import PLAYBOOK, ROLE
from tests.ansible.machine import CGROUPS, Machine
from tests.helpers import BIN, wait_until

ECHO_PORT = 7000
# A TCP echo server inside the machine on ADDRESS PORT (its process dies with the machine).
_ECHO = """
import socket, sys, threading
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen()
print("ready", flush=True)
def echo(sock):
    with sock:
        while data := sock.recv(65536):
            sock.sendall(data)
while True:
    threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()
"""
_CLIENT = """
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as sock:
        sock.sendall(b"through systemd")  # no half-close: rinetd 0.73 would close on it
        got = b""
        while len(got) < 15 and (data := sock.recv(100)):
            got += data
        print(got.decode())
except OSError as error:
    print(f"refused: {error}")
"""


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "booting systemd in namespaces needs root: run ./test.sh as root"
    if not os.path.exists("/lib/systemd/systemd") or not CGROUPS.is_dir():
        return "no systemd binary or no cgroup v2 tree at /sys/fs/cgroup/unified"
    return None


@pytest.fixture
def machine() -> Iterator[Machine]:
    reason = _why_not()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the systemd tests must run in CI: {reason}")
        pytest.skip(reason)
    booted = Machine()
    try:
        booted.boot()
        echo = subprocess.Popen(
            [
                *("nsenter", "-t", str(booted.pid), "-a", "/usr/bin/python3", "-c", _ECHO),
                *("127.0.0.1", str(ECHO_PORT)),
            ],
            stdout=subprocess.PIPE,
        )
        assert echo.stdout is not None and echo.stdout.readline() == b"ready\n"
        yield booted
    finally:
        booted.stop()


def _rule(port: int) -> dict[str, Any]:
    return {
        "bind_address": "0.0.0.0",
        "bind_port": port,
        "connect_address": "127.0.0.1",
        "connect_port": ECHO_PORT,
    }


def play(machine: Machine, rules: list[dict[str, Any]], **variables: Any) -> str:
    """The role played inside ``machine`` with the service managed; its output, or a
    failure with it."""
    done = try_play(machine, rules, **variables)
    if done.returncode != 0:
        journal = machine.run("journalctl", "-u", "rinetd-run", "-n", "15", "--no-pager")
        raise AssertionError(done.stdout[-3000:] + done.stderr[-2000:] + journal.stdout)
    return done.stdout


def try_play(
    machine: Machine, rules: list[dict[str, Any]], **variables: Any
) -> subprocess.CompletedProcess[str]:
    machine.path("/root/rinetdc-vars.json").write_text(
        json.dumps(
            {
                "rinetd_rules": rules,
                "rinetd_rinetdc": str(BIN / "rinetdc"),
                "rinetd_python": "/usr/bin/python3",
                "rinetd_manage_service": True,
                **variables,
            }
        )
    )
    done = machine.run(
        "env",
        f"PATH={BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        f"ANSIBLE_ROLES_PATH={ROLE.parent}",
        "ANSIBLE_NOCOLOR=1",
        "ANSIBLE_LOCALHOST_WARNING=0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING=0",
        "HOME=/root",
        str(BIN / "ansible-playbook"),
        *("-i", "localhost,", "-c", "local"),
        *("-e", f"ansible_python_interpreter={sys.executable}", "-e", "@/root/rinetdc-vars.json"),
        str(PLAYBOOK),
        check=False,
        timeout=300,
    )
    return done


def reply(machine: Machine, port: int) -> str:
    """What a client inside the machine gets back through ``port``."""
    return machine.run("/usr/bin/python3", "-c", _CLIENT, str(port)).stdout.strip()


def main_pid(machine: Machine) -> int:
    shown = machine.run("systemctl", "show", "-p", "MainPID", "--value", "rinetd-run")
    return int(shown.stdout.strip())


def status(machine: Machine, pid: int) -> dict[str, str]:
    """/proc/PID/status of a process of the machine, by its PID there."""
    text = machine.path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def in_service(machine: Machine, pid: int, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in the service's own mounts, as its user: what the sandbox allows."""
    ids = status(machine, pid)
    uid, gid = ids["Uid"].split()[0], ids["Gid"].split()[0]
    return machine.run("nsenter", "-t", str(pid), "-m", "-S", uid, "-G", gid, *command, check=False)


def test_it_starts_forwards_on_port_80_as_a_user_of_its_own_and_reloads_in_place(
    machine: Machine,
) -> None:
    play(machine, [_rule(80)])
    assert reply(machine, 80) == "through systemd"
    pid = main_pid(machine)
    own = status(machine, pid)
    assert own["Uid"].split()[0] != "0" and own["Gid"].split()[0] != "0"  # DynamicUser
    cap_net_bind_service = 1 << 10
    for kind in ("CapEff", "CapPrm", "CapBnd"):
        assert int(own[kind], 16) == cap_net_bind_service, (kind, own[kind])
    assert machine.path("/run/rinetd-run/rinetd-run.pid").read_text().strip() == str(pid)
    log = machine.path("/var/log/rinetd-run/rinetd-run.log")
    assert "\t80\t127.0.0.1\t7000\t" in log.read_text()
    _sandbox_holds(machine, pid)
    # The running unit's exposure score is the one the role's README states.
    shown = machine.run("systemd-analyze", "security", "--no-pager", "rinetd-run")
    score = re.search(r"Overall exposure level for rinetd-run\.service: ([0-9.]+)", shown.stdout)
    assert score, shown.stdout[-2000:]
    readme = (ROLE / "README.md").read_text()
    stated = re.search(r"rates the running service\s+\*\*([0-9.]+) OK\*\*", readme)
    assert stated and float(score.group(1)) == float(stated.group(1)), shown.stdout[-1500:]

    # A changed rule: a reload, not a restart; the new rule forwards, the old refuses.
    output = play(machine, [_rule(81)])
    assert "Reload rinetd-run" in output
    assert main_pid(machine) == pid
    assert reply(machine, 81) == "through systemd"
    assert reply(machine, 80).startswith("refused")


def test_a_rule_set_refused_on_reload_fails_the_play_and_changes_nothing(
    machine: Machine,
) -> None:
    play(machine, [_rule(80)])
    pid = main_pid(machine)
    deployed = {
        name: machine.path(f"/etc/rinetd/{name}").read_bytes()
        for name in ("rules.json", "rinetd.conf")
    }
    # It compiles, but the echo server holds 127.0.0.1:7000: only the runtime can know.
    held = {**_rule(81), "bind_address": "127.0.0.1", "bind_port": ECHO_PORT}
    refused = try_play(machine, [_rule(81), held])
    assert refused.returncode != 0
    assert (
        "rinetd-run refused the new rule set and serves the old one: reload failed, "
        f"keeping the old rules: cannot bind 127.0.0.1 {ECHO_PORT}/tcp" in refused.stdout
    ), refused.stdout[-3000:]
    assert main_pid(machine) == pid  # not restarted: the old rules serve on
    assert reply(machine, 80) == "through systemd"
    assert reply(machine, 81).startswith("refused")
    for name, content in deployed.items():  # what runs is what is on disk
        assert machine.path(f"/etc/rinetd/{name}").read_bytes() == content, name
    assert sorted(os.listdir(machine.path("/etc/rinetd"))) == ["rinetd.conf", "rules.json"]
    state = machine.run("systemctl", "is-active", "rinetd-run", check=False).stdout.strip()
    assert state == "active"
    # By hand too: systemctl reload says it failed.
    machine.path("/etc/rinetd/rules.json").write_bytes(refused_rules(machine, held))
    by_hand = machine.run("systemctl", "reload", "rinetd-run", check=False)
    assert by_hand.returncode != 0 and main_pid(machine) == pid
    machine.path("/etc/rinetd/rules.json").write_bytes(deployed["rules.json"])
    # The files put back are exactly the old ones: the first play again changes nothing.
    again = play(machine, [_rule(80)])
    assert re.search(r"localhost\s*: ok=\d+\s+changed=0 ", again), again[-1500:]


def refused_rules(machine: Machine, rule: dict[str, Any]) -> bytes:
    """A compiled rule set of ``rule`` alone, made by rinetdc inside ``machine``."""
    conf = machine.path("/root/held.conf")
    conf.write_text(
        f"{rule['bind_address']} {rule['bind_port']} "
        f"{rule['connect_address']} {rule['connect_port']}\n"
    )
    machine.run(str(BIN / "rinetdc"), "compile", "/root/held.conf", "-o", "/root/held.json")
    return machine.path("/root/held.json").read_bytes()


# A client that keeps a connection through the service open until the service ends it.
_HOLD = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30) as sock:
    sock.sendall(b"x")
    assert sock.recv(1) == b"x"
    print("open", flush=True)
    sock.recv(1)
    print("closed", flush=True)
"""


def test_a_killed_service_comes_back_and_stop_waits_its_grace_then_ends_every_process(
    machine: Machine,
) -> None:
    # A pool with active checks: each worker has a health checker of its own, which
    # systemd's stop signals too.
    checked = {
        "bind_address": "127.0.0.1",
        "bind_port": 81,
        "connect_pool": "echo",
        "health_interval": 1,
    }
    pools = [{"name": "echo", "members": [{"host": "127.0.0.1", "port": ECHO_PORT}]}]
    play(
        machine,
        [_rule(80), checked],
        rinetd_pools=pools,
        rinetd_workers=2,
        rinetd_stop_grace=3,
    )
    pid = main_pid(machine)
    procs = machine.path("/sys/fs/cgroup/system.slice/rinetd-run.service/cgroup.procs")
    # The supervisor, its two workers and their two checkers.
    wait_until(lambda: len(procs.read_text().split()) == 5, "five processes in the unit")
    machine.run("kill", "-9", str(pid))
    wait_until(lambda: main_pid(machine) not in (0, pid), "rinetd-run started again", 20)
    wait_until(lambda: reply(machine, 80) == "through systemd", "forwarding again", 20)
    held = subprocess.Popen(
        ["nsenter", "-t", str(machine.pid), "-a", "/usr/bin/python3", "-c", _HOLD, "80"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert held.stdout is not None and held.stdout.readline().strip() == "open"
        began = time.monotonic()
        stopped = machine.run("systemctl", "stop", "rinetd-run", timeout=60)
        took = time.monotonic() - began
        assert stopped.returncode == 0
        # It waited for the open connection (the grace), then ended it itself: systemd
        # had no need of SIGKILL (TimeoutStopSec is the grace + 10 s).
        assert 2.5 <= took < 13, took
        result = machine.run("systemctl", "show", "-p", "Result", "--value", "rinetd-run")
        assert result.stdout.strip() == "success"
        assert held.stdout.readline().strip() == "closed"
    finally:
        held.kill()
        held.wait()
    state = machine.run("systemctl", "is-active", "rinetd-run", check=False).stdout.strip()
    assert state == "inactive"
    assert not procs.exists() or procs.read_text().split() == []
    # The checkers outlived the stop's SIGTERM until their workers let them go.
    journal = machine.run("journalctl", "-u", "rinetd-run", "-o", "cat", "--no-pager").stdout
    assert "health checker" not in journal, journal[-2000:]


def test_logfile_dash_reaches_the_journal(machine: Machine) -> None:
    play(
        machine,
        [_rule(80)],
        rinetd_logfile="-",
        rinetd_log_json=True,
    )
    assert reply(machine, 80) == "through systemd"

    def logged() -> list[dict[str, Any]]:
        shown = machine.run("journalctl", "-u", "rinetd-run", "-o", "cat", "--no-pager")
        return [json.loads(line) for line in shown.stdout.splitlines() if line.startswith("{")]

    lines = wait_until(lambda: len(logged()) >= 2 and logged(), "two JSON lines in the journal")
    assert [line["result"] for line in lines[-2:]] == ["opened", "done-local-closed"] or [
        line["result"] for line in lines[-2:]
    ] == ["opened", "done-remote-closed"]


def _sandbox_holds(machine: Machine, pid: int) -> None:
    """From inside the service's mounts, as its user: it writes only its own folders."""
    for folder in ("/etc", "/usr", "/run", "/run/lock", "/var/lib"):
        wrote = in_service(machine, pid, "touch", f"{folder}/rinetdc-probe")
        assert wrote.returncode != 0, f"the service could write {folder}"
    for hidden in ("/root", "/home"):  # ProtectHome: empty (and closed to a dynamic user)
        assert os.listdir(hidden) or hidden == "/home"  # the host's /root is not empty
        assert in_service(machine, pid, "ls", "-A", hidden).stdout.strip() == "", hidden
    for folder in ("/run/rinetd-run", "/var/log/rinetd-run"):
        wrote = in_service(machine, pid, "touch", f"{folder}/rinetdc-probe")
        assert wrote.returncode == 0, f"the service cannot write its own {folder}: {wrote.stderr}"


def test_the_sandbox_holds_for_root_too(machine: Machine) -> None:
    """Without the dynamic user (the first test checks it with one)."""
    play(machine, [_rule(80)], rinetd_dynamic_user=False)
    _sandbox_holds(machine, main_pid(machine))


def _kernel_table(machine: Machine) -> str | None:
    shown = machine.run("nft", "list", "table", "inet", "rinetd_run", check=False)
    return shown.stdout if shown.returncode == 0 else None


def test_dataplane_kernel_gets_cap_net_admin_its_table_and_cleans_up(machine: Machine) -> None:
    # A backend on an address of its own in the machine (the kernel does not DNAT to
    # loopback): one end of a veth pair.
    machine.run("ip", "link", "add", "rdc0", "type", "veth", "peer", "name", "rdc1")
    machine.run("ip", "addr", "add", "10.99.0.1/24", "dev", "rdc0")
    for link in ("rdc0", "rdc1"):
        machine.run("ip", "link", "set", link, "up")
    backend = subprocess.Popen(
        [
            "nsenter",
            "-t",
            str(machine.pid),
            "-a",
            "/usr/bin/python3",
            "-c",
            _ECHO,
            "10.99.0.1",
            "7001",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert backend.stdout is not None and backend.stdout.readline() == b"ready\n"
        rule = {**_rule(81), "connect_address": "10.99.0.1", "connect_port": 7001}
        play(machine, [rule], rinetd_dataplane="kernel")  # with the default log file

        def forwarding() -> str:  # read inside: a net sysctl shows the reader's namespace
            return machine.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()

        table = _kernel_table(machine)
        assert table is not None and "dnat ip to 10.99.0.1:7001" in table
        assert forwarding() == "1"
        pid = main_pid(machine)
        own = status(machine, pid)
        cap_net_bind_service, cap_net_admin = 1 << 10, 1 << 12
        assert int(own["CapEff"], 16) == cap_net_bind_service | cap_net_admin
        assert own["Uid"].split()[0] != "0"  # still a user of its own
        machine.run("/usr/bin/python3", "-c", _CLIENT.replace("127.0.0.1", "10.99.0.1"), "81")
        assert re.search(r"counter packets [1-9]", _kernel_table(machine) or ""), "not DNAT'd"
        # Logged from conntrack's events, with accounting on meanwhile.
        log = "/var/log/rinetd-run/rinetd-run.log"

        def logged() -> list[str]:
            return machine.run("cat", log).stdout.splitlines()

        wait_until(lambda: len(logged()) >= 2, "the kernel's connection logged", 20)
        opened, done = (line.split("\t")[3:] for line in logged()[:2])
        assert opened == ["81", "10.99.0.1", "7001", "0", "0", "opened"]
        assert done[:3] == ["81", "10.99.0.1", "7001"] and done[5] == "done-remote-closed"
        assert int(done[3]) > 15 and int(done[4]) > 15  # IP-level counts
        acct = "/proc/sys/net/netfilter/nf_conntrack_acct"
        assert machine.run("cat", acct).stdout.strip() == "1"
        # Killed: ExecStopPost puts forwarding back and deletes the table, the restart
        # loads it again.
        machine.run("kill", "-9", str(pid))
        wait_until(lambda: main_pid(machine) not in (0, pid), "rinetd-run started again", 20)
        wait_until(lambda: _kernel_table(machine) is not None, "the table loaded again", 20)
        journal = machine.run("journalctl", "-u", "rinetd-run", "-o", "cat", "--no-pager")
        assert "removed table inet rinetd_run left by a run that did not stop" in journal.stdout
        machine.run("systemctl", "stop", "rinetd-run", timeout=60)
        assert _kernel_table(machine) is None
        assert forwarding() == "0"
        assert machine.run("cat", acct).stdout.strip() == "0"
    finally:
        backend.kill()
        backend.wait()


def test_debian_s_rinetd_is_stopped_only_when_asked_and_its_port_served(
    machine: Machine,
) -> None:
    if shutil.which("rinetd") is None and not os.path.exists("/usr/sbin/rinetd"):
        pytest.fail("rinetd is missing: ./test.sh as root installs it")
    machine.path("/etc/rinetd.conf").write_text(f"0.0.0.0 8080 127.0.0.1 {ECHO_PORT}\n")
    machine.run("systemctl", "start", "rinetd")
    wait_until(lambda: reply(machine, 8080) == "through systemd", "Debian's rinetd on 8080")
    # Not asked: ours cannot take the port, and the start itself fails (Type=notify: no
    # READY=1 from a process that could not bind), not only the reload after it.
    failed = try_play(machine, [_rule(8080)], rinetd_stop_rinetd=False)
    assert failed.returncode != 0
    assert "TASK [rinetd : Enable and start rinetd-run.]" in failed.stdout
    assert "Unable to start service rinetd-run" in failed.stdout, failed.stdout[-3000:]
    assert machine.run("systemctl", "is-active", "rinetd", check=False).stdout.strip() == "active"
    play(machine, [_rule(8080)], rinetd_stop_rinetd=True)
    assert machine.run("systemctl", "is-active", "rinetd", check=False).stdout.strip() != "active"
    enabled = machine.run("systemctl", "is-enabled", "rinetd", check=False).stdout.strip()
    assert enabled == "disabled"
    # The failed start left it restarting every 2 s (Restart=on-failure): now it binds.
    wait_until(lambda: reply(machine, 8080) == "through systemd", "rinetd-run on 8080", 20)
    listening = machine.run("ss", "-ltnpH", "sport", "= :8080").stdout
    assert f"pid={main_pid(machine)}," in listening, listening  # rinetd-run's, not rinetd's


_MANY = """
import socket, sys
for _ in range(int(sys.argv[2])):
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as sock:
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
"""


def test_the_real_logrotate_reloads_through_systemctl_and_loses_no_line(
    machine: Machine,
) -> None:
    play(machine, [_rule(80)])
    snippet = "/etc/logrotate.d/rinetd-run"
    assert "systemctl reload rinetd-run" in machine.path(snippet).read_text()
    log = "/var/log/rinetd-run/rinetd-run.log"
    sent = 0
    for _ in range(3):
        machine.run("/usr/bin/python3", "-c", _MANY, "80", "100")
        sent += 100
        machine.run("logrotate", "-f", "-s", "/root/logrotate.state", snippet)
        assert machine.path(log + ".1").exists()
    machine.run("/usr/bin/python3", "-c", _MANY, "80", "50")
    sent += 50
    machine.run("systemctl", "stop", "rinetd-run", timeout=60)  # flushes the log
    folder = machine.path("/var/log/rinetd-run")
    lines: list[str] = []
    for path in sorted(folder.glob("rinetd-run.log*")):
        data = path.read_bytes()
        lines += (gzip.decompress(data) if path.suffix == ".gz" else data).decode().splitlines()
    assert len(lines) == 2 * sent  # opened and done-... for each connection
    assert all(len(line.split("\t")) == 9 for line in lines)  # none split
    assert len(list(folder.glob("rinetd-run.log*"))) == 4  # the log, .1, .2.gz, .3.gz
    reloads = machine.run("journalctl", "-u", "rinetd-run", "-o", "cat", "--no-pager").stdout
    assert reloads.count("reloaded: forwarding 1 rules") >= 3  # one per rotation, at least
