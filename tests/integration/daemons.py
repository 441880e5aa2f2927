"""Forwarders running on the firewall host: ours (rinetd-run) and Debian's rinetd 0.73."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import BIN
from tests.integration.conftest import AGENT
from tests.integration.topology import Topology


@dataclass
class Daemon:
    topology: Topology
    process: subprocess.Popen[bytes]
    log: Path
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.errors.append(raw.decode(errors="replace").rstrip())

    def wait_for(self, text: str, count: int = 1, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in line for line in self.errors) >= count:
                return
            time.sleep(0.02)
        raise AssertionError(f"forwarder did not say {text!r}: {self.errors}")

    def lines(self, count: int, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.log.read_text().splitlines() if self.log.exists() else []
            if len(lines) >= count:
                time.sleep(0.2)  # and nothing more is on its way
                return self.log.read_text().splitlines()
            time.sleep(0.02)
        raise AssertionError(f"wanted {count} log lines: {self.log.read_text()}")

    def stop(self) -> None:
        self.topology.stop(self.process)


def compile_rules(work: Path) -> None:
    """rinetd.conf -> rules.json in ``work``, with the real rinetdc."""
    conf, rules = str(work / "rinetd.conf"), str(work / "rules.json")
    done = subprocess.run(
        [str(BIN / "rinetdc"), "compile", conf, "-o", rules],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def start_ours(topology: Topology, conf: str, name: str) -> Daemon:
    work = topology.workdir / name
    work.mkdir()
    (work / "rinetd.conf").write_text(conf.replace("LOG", str(work / "rinetd.log")))
    compile_rules(work)
    process = topology.spawn(
        "fw", [str(BIN / "rinetd-run"), str(work / "rules.json")], stderr=subprocess.PIPE
    )
    daemon = Daemon(topology, process, work / "rinetd.log")
    daemon.wait_for("rinetd-run: forwarding")
    return daemon


def rinetd_binary() -> str:
    found = shutil.which("rinetd") or "/usr/sbin/rinetd"
    assert Path(found).exists(), "rinetd 0.73 is missing: ./test.sh as root installs it"
    return found


def start_rinetd(topology: Topology, conf: str, name: str, ports: list[str]) -> Daemon:
    work = topology.workdir / name
    work.mkdir()
    (work / "rinetd.conf").write_text(conf.replace("LOG", str(work / "rinetd.log")))
    process = topology.spawn(
        "fw", [rinetd_binary(), "-f", "-c", str(work / "rinetd.conf")], stderr=subprocess.PIPE
    )
    daemon = Daemon(topology, process, work / "rinetd.log")
    # rinetd says nothing when ready: wait until its ports are bound.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listening = topology.run("fw", ["ss", "-Hltnu"]).stdout
        if all(f":{port} " in listening for port in ports):
            return daemon
        time.sleep(0.05)
    daemon.stop()
    raise AssertionError(f"rinetd did not bind {ports}: {daemon.errors}")


def agent(topology: Topology, role: str, *args: str) -> dict[str, Any]:
    done = topology.run(role, [sys.executable, AGENT, *args], timeout=60)
    result: dict[str, Any] = json.loads(done.stdout)
    return result
