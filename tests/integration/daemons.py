"""Forwarders running on the firewall host: ours (rinetd-run) and Debian's rinetd 0.73."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import BIN, compile_config
from tests.integration.conftest import AGENT
from tests.integration.topology import Topology
from tests.runtime.harness import Forwarder

# A forwarder in the firewall namespace is driven like one on loopback.
Daemon = Forwarder


def start_ours(topology: Topology, conf: str, name: str, *flags: str) -> Daemon:
    """rinetd-run on the firewall; ``flags`` go to rinetdc (--no-resolve for names that
    only the firewall's resolver knows)."""
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=topology.workdir))
    compile_config(conf, work, *flags)
    process = topology.spawn(
        "fw", [str(BIN / "rinetd-run"), str(work / "rules.json")], stderr=subprocess.PIPE
    )
    daemon = Daemon(process, work, work / "rules.json")
    daemon.wait_for_stderr("rinetd-run: forwarding")
    return daemon


def rinetd_binary() -> str:
    found = shutil.which("rinetd") or "/usr/sbin/rinetd"
    assert Path(found).exists(), "rinetd 0.73 is missing: ./test.sh as root installs it"
    return found


def start_rinetd(topology: Topology, conf: str, name: str, ports: list[str]) -> Daemon:
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=topology.workdir))
    (work / "rinetd.conf").write_text(conf.replace("LOG", str(work / "rinetd.log")))
    process = topology.spawn(
        "fw", [rinetd_binary(), "-f", "-c", str(work / "rinetd.conf")], stderr=subprocess.PIPE
    )
    daemon = Daemon(process, work, work / "rinetd.conf")
    # rinetd says nothing when ready: wait until its ports are bound.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listening = topology.run("fw", ["ss", "-Hltnu"]).stdout
        if all(f":{port} " in listening for port in ports):
            return daemon
        time.sleep(0.05)
    daemon.stop()
    raise AssertionError(f"rinetd did not bind {ports}: {daemon.errors}")


def hello_server(topology: Topology, address: str, port: int) -> subprocess.Popen[bytes]:
    """A server on the backend host's ``address`` that says that address on a line, then
    echoes: a client sees which backend it reached.  Returned once it listens."""
    process = topology.spawn(
        "be",
        [sys.executable, AGENT, "tcp-hello", "--host", address, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    return process


def agent(topology: Topology, role: str, *args: str) -> dict[str, Any]:
    done = topology.run(role, [sys.executable, AGENT, *args], timeout=60)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def backend_saw(topology: Topology, port: int, during: Callable[[], None]) -> list[dict[str, str]]:
    """The packets to or from ``port`` on the backend's link while ``during`` runs (scapy,
    on the backend)."""
    args = ["capture", "--iface", topology.interface("be"), "--port", str(port)]
    capture = topology.spawn(
        "be",
        [sys.executable, AGENT, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert capture.stdout is not None and capture.stdin is not None
    try:
        assert capture.stdout.readline().strip() == b"ready"
        during()
        time.sleep(0.5)
        capture.stdin.close()
        packets: list[dict[str, str]] = json.loads(capture.stdout.readline())
    finally:
        topology.stop(capture)
    return packets
