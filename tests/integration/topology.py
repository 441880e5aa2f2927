"""A small network made of Linux namespaces: two clients, a firewall, a backend.

    client1 (partner range) --\\                      /-- backend
                               firewall (no forwarding)
    client2 (other range)  --/

Clients reach only the firewall's outside addresses; the backend is on the
inside net. The firewall has IP forwarding off, so the only way in is a
forwarder listening on it. Names carry a per-run prefix, and ``destroy``
removes every namespace (and with it every veth) and kills every process the
topology started, whatever state the test left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Host:
    name: str  # short role name: c1, c2, fw, be
    namespace: str
    ipv4: str
    ipv6: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Topology:
    prefix: str
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # the firewall's address facing each client, and facing the backend
    firewall_outside: dict[str, tuple[str, str]] = field(default_factory=dict)
    firewall_inside: tuple[str, str] = ("10.62.0.1", "fd62::1")
    workdir: Path = Path("/nonexistent")  # files of the run: logs, peers, configs

    def namespace(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def create(self) -> None:
        for role in ("c1", "c2", "fw", "be"):
            _ip("netns", "add", self.namespace(role))
            self.run(role, ["ip", "link", "set", "lo", "up"])
        for knob in ("ipv4/ip_forward", "ipv6/conf/all/forwarding"):
            self.run("fw", ["sh", "-c", f"echo 0 > /proc/sys/net/{knob}"])
        links = [
            # (role, its address, firewall address, prefix lengths)
            ("c1", ("10.61.4.10", "fd61:4::10"), ("10.61.4.1", "fd61:4::1"), (24, 64)),
            ("c2", ("10.61.9.20", "fd61:9::20"), ("10.61.9.1", "fd61:9::1"), (24, 64)),
            ("be", ("10.62.0.2", "fd62::2"), self.firewall_inside, (24, 64)),
        ]
        for role, (v4, v6), (fw4, fw6), (len4, len6) in links:
            here, there = f"{self.prefix}{role}a", f"{self.prefix}{role}b"
            _ip("link", "add", here, "type", "veth", "peer", "name", there)
            _ip("link", "set", here, "netns", self.namespace(role))
            _ip("link", "set", there, "netns", self.namespace("fw"))
            for ns, dev, a4, a6 in ((role, here, v4, v6), ("fw", there, fw4, fw6)):
                self.run(ns, ["ip", "addr", "add", f"{a4}/{len4}", "dev", dev])
                self.run(ns, ["ip", "-6", "addr", "add", f"{a6}/{len6}", "dev", dev, "nodad"])
                self.run(ns, ["ip", "link", "set", dev, "up"])
            if role != "be":
                # A default route through the firewall: were it forwarding, the
                # inside net would be reachable. It is not.
                self.run(role, ["ip", "route", "add", "default", "via", fw4])
                self.run(role, ["ip", "-6", "route", "add", "default", "via", fw6])
                self.firewall_outside[role] = (fw4, fw6)
            self.hosts[role] = Host(role, self.namespace(role), v4, v6)
        self.hosts["fw"] = Host("fw", self.namespace("fw"), *self.firewall_inside)

    def interface(self, role: str) -> str:
        """The name of ``role``'s own end of its link to the firewall."""
        return f"{self.prefix}{role}a"

    def command(self, role: str, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(role), *args]

    def run(
        self, role: str, args: list[str], timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(role, args), check=True, capture_output=True, text=True, timeout=timeout
        )

    def spawn(self, role: str, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(  # type: ignore[call-overload]
            self.command(role, args), start_new_session=True, **kwargs
        )
        self.processes.append(process)
        return process  # type: ignore[no-any-return]

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def destroy(self) -> None:
        for process in self.processes:
            self.stop(process)
        for role in ("c1", "c2", "fw", "be"):
            namespace = self.namespace(role)
            # Anything still inside (a stray child) dies with its namespace's pids.
            pids = subprocess.run(
                ["ip", "netns", "pids", namespace], capture_output=True, text=True
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def leftovers(prefix: str) -> list[str]:
    """Namespaces and links whose names start with ``prefix``, anywhere on the machine."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found = [line.split()[0] for line in names.splitlines() if line.startswith(prefix)]
    found += [
        line.split(":")[1].strip().split("@")[0]
        for line in links.splitlines()
        if line.split(":")[1].strip().startswith(prefix)
    ]
    return found
