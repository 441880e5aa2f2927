"""The role's test harness: a deployment into a temporary root, played for real with
ansible-playbook against localhost, and the runtime it installs started as the unit would."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import BIN, ROOT
from tests.runtime.harness import TcpEcho, free_port, recv_all

ROLE = ROOT / "ansible" / "roles" / "rinetd"
PLAYBOOK = Path(__file__).with_name("playbook.yml")


class Deployment:
    def __init__(self, root: Path, echo_port: int) -> None:
        self.root = root
        self.echo_port = echo_port
        self.ports = [free_port(), free_port()]
        self.runtime: subprocess.Popen[bytes] | None = None

    def variables(self, rules: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
        root = self.root
        rules = rules if rules is not None else [self.rule(self.ports[0])]
        return {
            "rinetd_rules": rules,
            "rinetd_allow": ["127.0.0.*"],
            "rinetd_logfile": str(root / "var/log/rinetd-run.log"),
            "rinetd_pidfile": str(root / "run/rinetd-run.pid"),
            "rinetd_config_path": str(root / "etc/rinetd/rinetd.conf"),
            "rinetd_rules_path": str(root / "etc/rinetd/rules.json"),
            "rinetd_runtime_path": str(root / "usr/local/lib/rinetd/rinetd-run.pyz"),
            "rinetd_unit_path": str(root / "etc/systemd/system/rinetd-run.service"),
            "rinetd_logrotate_path": str(root / "etc/logrotate.d/rinetd-run"),
            "rinetd_python": sys.executable,
            "rinetd_manage_service": False,
            "rinetd_dynamic_user": False,
            "rinetd_rinetdc": str(BIN / "rinetdc"),
            **extra,
        }

    def rule(self, port: int, connect_port: int | None = None) -> dict[str, Any]:
        return {
            "bind_address": "127.0.0.1",
            "bind_port": port,
            "connect_address": "127.0.0.1",
            "connect_port": connect_port or self.echo_port,
        }

    def play(
        self,
        variables: dict[str, Any],
        *flags: str,
        playbook: Path = PLAYBOOK,
        collections: Path | None = None,
        inventory: str = "localhost,",
        env_extra: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        extra = self.root.parent / "vars.json"
        extra.write_text(json.dumps(variables))
        env = {
            **os.environ,
            "ANSIBLE_ROLES_PATH": str(ROLE.parent),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_LOCAL_TEMP": str(self.root.parent / "ansible-tmp"),
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            **(env_extra or {}),
        }
        if collections is not None:  # the installed collection only, not the role's home
            env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
            env["ANSIBLE_ROLES_PATH"] = str(self.root.parent / "no-roles")
        command = [
            str(BIN / "ansible-playbook"),
            "-i",
            inventory,
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"@{extra}",
            str(playbook),
            *flags,
        ]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    def files(self) -> dict[str, bytes]:
        return {
            str(path.relative_to(self.root)): path.read_bytes()
            for path in sorted(self.root.rglob("*"))
            if path.is_file() and "log" not in path.parts and "run" not in path.parts
        }

    def start(self) -> None:
        """The deployed runtime, as the unit would run it, with the standard library only."""
        self.runtime = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                str(self.root / "usr/local/lib/rinetd/rinetd-run.pyz"),
                str(self.root / "etc/rinetd/rules.json"),
            ],
            stderr=subprocess.PIPE,
        )
        assert self.runtime.stderr is not None
        assert b"forwarding" in self.runtime.stderr.readline()

    def stop(self) -> None:
        if self.runtime is not None and self.runtime.poll() is None:
            self.runtime.terminate()
            self.runtime.wait(timeout=15)


def changed(output: str) -> int:
    match = re.search(r"changed=(\d+)", output)
    assert match, output
    return int(match.group(1))


def forwards(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"through the role")
            sock.shutdown(socket.SHUT_WR)
            return recv_all(sock) == b"through the role"
    except OSError:
        return False


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    echo = TcpEcho().start()
    (tmp_path / "root").mkdir()
    deployment = Deployment(tmp_path / "root", echo.port)
    yield deployment
    deployment.stop()
    echo.stop()
