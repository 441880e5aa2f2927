"""The integration suite's network: built once per run, always torn down.

Needs root (network namespaces). Outside CI a non-root run is skipped with
the reason; in CI (CI=true) it fails, so the suite can never pass unseen.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.topology import Topology

AGENT = str(Path(__file__).with_name("agent.py"))
# Backend services, inside the backend namespace.
ECHO, ECHO_GUARDED, UDP_ECHO, HTTP, SSH = 7000, 7002, 7001, 8080, 22


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the integration suite needs root for network namespaces: run ./test.sh as root"
    if shutil.which("ip") is None:
        return "iproute2 is missing: ./test.sh as root installs it"
    return None


@pytest.fixture(scope="session")
def net() -> Iterator[Topology]:
    reason = _why_not()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"integration tests must run in CI: {reason}")
        pytest.skip(reason)
    topology = Topology(prefix=f"rdc{os.getpid() % 100000}")
    workdir = Path(tempfile.mkdtemp(prefix="rinetdc-net-"))
    try:
        topology.create()
        (workdir / "www").mkdir()
        (workdir / "www" / "index.html").write_bytes(b"x" * 5000)
        for port, kind in ((ECHO, "tcp-echo"), (ECHO_GUARDED, "tcp-echo"), (SSH, "tcp-echo")):
            _serve(topology, [kind, "--port", str(port), "--peers", str(workdir / f"peers-{port}")])
        _serve(
            topology, ["udp-echo", "--port", str(UDP_ECHO), "--peers", str(workdir / "peers-udp")]
        )
        topology.spawn(
            "be",
            [
                sys.executable,
                "-m",
                "http.server",
                str(HTTP),
                "--bind",
                "::",
                "--directory",
                str(workdir / "www"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_tcp(topology, "fw", "10.62.0.2", HTTP)
        topology.workdir = workdir
        yield topology
    finally:
        topology.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the session's topology is gone: nothing of any run of ours may remain."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return
    from tests.integration.topology import leftovers

    left = leftovers(f"rdc{os.getpid() % 100000}")
    if left:
        print(f"\nintegration: left behind: {left}", file=sys.stderr)
        session.exitstatus = 1


def _serve(topology: Topology, args: list[str]) -> None:
    process = topology.spawn(
        "be", [sys.executable, AGENT, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"


def wait_tcp(topology: Topology, role: str, host: str, port: int) -> None:
    code = (
        "import socket, sys, time\n"
        "for _ in range(200):\n"
        "    try:\n"
        f"        socket.create_connection(({host!r}, {port}), timeout=1).close(); sys.exit(0)\n"
        "    except OSError: time.sleep(0.05)\n"
        "sys.exit(1)\n"
    )
    topology.run(role, [sys.executable, "-c", code])
