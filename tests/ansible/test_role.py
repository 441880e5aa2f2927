"""The Ansible role, run for real: ansible-playbook against localhost into a temporary root."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.conftest import PLAYBOOK, ROLE, Deployment, changed, forwards
from tests.helpers import BIN, ROOT, wait_until
from tests.runtime.harness import free_port


def test_deploy_reload_idempotence_errors_and_check_mode(deployment: Deployment) -> None:
    first = deployment.play(deployment.variables())
    assert first.returncode == 0, first.stdout + first.stderr
    assert changed(first.stdout) >= 4
    conf = (deployment.root / "etc/rinetd/rinetd.conf").read_text()
    assert f"127.0.0.1 {deployment.ports[0]} 127.0.0.1 {deployment.echo_port}" in conf
    deployment.start()
    assert forwards(deployment.ports[0])
    pid = deployment.runtime.pid if deployment.runtime else 0

    # A new rule: only a reload is asked for, and the running runtime takes it.
    two_rules = [deployment.rule(deployment.ports[0]), deployment.rule(deployment.ports[1])]
    second = deployment.play(deployment.variables(two_rules))
    assert second.returncode == 0, second.stdout
    assert (
        "RUNNING HANDLER [rinetd : Reload a running rinetd-run through its pid file.]"
        in second.stdout
    )
    assert "RUNNING HANDLER [rinetd : Restart rinetd-run]" not in second.stdout
    assert changed(second.stdout) == 3  # rinetd.conf, rules.json, the SIGHUP
    assert forwards(deployment.ports[1])
    assert deployment.runtime is not None and deployment.runtime.pid == pid
    assert deployment.runtime.poll() is None

    # Nothing changed: nothing changes.
    third = deployment.play(deployment.variables(two_rules))
    assert third.returncode == 0 and changed(third.stdout) == 0, third.stdout

    # A broken rule fails the play with the diagnostic; the host keeps its files.
    before = deployment.files()
    broken = [*two_rules, deployment.rule(free_port(), connect_port=99999)]
    fourth = deployment.play(deployment.variables(broken))
    assert fourth.returncode != 0
    assert "error[E006]: port 99999 is out of range" in fourth.stdout
    assert deployment.files() == before

    # Check mode with a change: the diff is shown, nothing is written.
    one_rule = [deployment.rule(deployment.ports[0])]
    fifth = deployment.play(deployment.variables(one_rule), "--check", "--diff")
    assert fifth.returncode == 0, fifth.stdout
    assert f"-127.0.0.1 {deployment.ports[1]} 127.0.0.1 {deployment.echo_port}" in fifth.stdout
    port, echo = deployment.ports[1], deployment.echo_port
    removed = f"removed: 127.0.0.1 {port}/tcp -> 127.0.0.1 {echo}/tcp"
    assert "rinetdc diff (what the change does):" in fifth.stdout and removed in fifth.stdout
    assert deployment.files() == before

    # Check mode still checks: a broken configuration fails there too.
    sixth = deployment.play(deployment.variables(broken), "--check")
    assert sixth.returncode != 0 and "error[E006]" in sixth.stdout
    assert deployment.files() == before


def test_a_changed_runtime_asks_for_a_restart_not_a_reload(deployment: Deployment) -> None:
    assert deployment.play(deployment.variables()).returncode == 0
    runtime = deployment.root / "usr/local/lib/rinetd/rinetd-run.pyz"
    good = runtime.read_bytes()
    runtime.write_bytes(good + b"tampered")
    done = deployment.play(deployment.variables())
    assert done.returncode == 0, done.stdout
    assert "RUNNING HANDLER [rinetd : Restart rinetd-run]" in done.stdout
    assert "Reload" not in done.stdout.split("RUNNING HANDLER", 1)[1]
    assert runtime.read_bytes() == good


def test_raw_configuration_file(deployment: Deployment, tmp_path: Path) -> None:
    source = tmp_path / "site-rinetd.conf"
    source.write_text(f"127.0.0.1 {deployment.ports[1]} 127.0.0.1 {deployment.echo_port}\n")
    done = deployment.play(deployment.variables([], rinetd_config_file=str(source)))
    assert done.returncode == 0, done.stdout
    assert (deployment.root / "etc/rinetd/rinetd.conf").read_bytes() == source.read_bytes()
    rules = json.loads((deployment.root / "etc/rinetd/rules.json").read_text())
    assert [r["bind"]["port"] for r in rules["rules"]] == [deployment.ports[1]]
    # rinetdc reads the file itself: a byte that is not UTF-8 is said where it is.
    before = deployment.files()
    source.write_bytes(b"# caf\xe9\n" + source.read_bytes())
    done = deployment.play(deployment.variables([], rinetd_config_file=str(source)))
    assert done.returncode != 0
    assert f"rinetdc: {source} is not UTF-8 text (byte 5 is invalid)" in done.stdout
    assert deployment.files() == before


def test_raw_configuration_text(deployment: Deployment) -> None:
    text = f"127.0.0.1 {deployment.ports[0]} 127.0.0.1 {deployment.echo_port}\n"
    variables = deployment.variables([], rinetd_config_text=text)
    done = deployment.play(variables)
    assert done.returncode == 0, done.stdout
    assert (deployment.root / "etc/rinetd/rinetd.conf").read_text() == text
    deployment.start()
    assert forwards(deployment.ports[0])
    bad = deployment.play(deployment.variables([], rinetd_config_text="allow 10.0.0.x\n"))
    assert bad.returncode != 0 and "error[E008]" in bad.stdout


def _unit(deployment: Deployment, **variables: Any) -> str:
    done = deployment.play(deployment.variables(**variables))
    assert done.returncode == 0, done.stdout
    return (deployment.root / "etc/systemd/system/rinetd-run.service").read_text()


def test_the_unit_runs_as_a_user_of_its_own_with_its_workers_and_verifies(
    deployment: Deployment,
) -> None:
    """The unit as written (what systemd makes of it: test_systemd.py); zero workers
    refused."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not on this machine")
    text = _unit(
        deployment,
        rinetd_dynamic_user=True,
        rinetd_logfile="/var/log/rinetd-run/rinetd-run.log",
        rinetd_pidfile="/run/rinetd-run/rinetd-run.pid",
        rinetd_workers=3,
    )
    assert "Type=notify\n" in text and " --status /run/rinetd-run/status.json\n" in text
    assert "--reload $MAINPID --status /run/rinetd-run/status.json\n" in text  # ExecReload
    assert "DynamicUser=yes" in text and "AmbientCapabilities=CAP_NET_BIND_SERVICE" in text
    assert "LogsDirectory=rinetd-run\n" in text and "RuntimeDirectory=rinetd-run\n" in text
    assert "ReadWritePaths" not in text
    (exec_start,) = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    assert " --workers 3 " in exec_start, exec_start
    unit = deployment.root / "etc/systemd/system/rinetd-run.service"
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert score, security.stdout + security.stderr
    assert float(score.group(1)) <= 2.0, security.stdout  # the role's README says 1.8
    refused = deployment.play(deployment.variables(rinetd_workers=0))
    assert refused.returncode != 0 and "rinetd-run needs at least one worker" in refused.stdout


def test_only_dataplane_kernel_gets_cap_net_admin_and_a_cleanup(deployment: Deployment) -> None:
    kernel = _unit(deployment, rinetd_dataplane="kernel")
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_ADMIN\n" in kernel
    assert "AF_NETLINK" in kernel and "ProcSubset=all\n" in kernel
    assert "--kernel-cleanup\n" in kernel  # ExecStopPost
    assert "dataplane kernel\n" in (deployment.root / "etc/rinetd/rinetd.conf").read_text()
    if shutil.which("systemd-analyze") is not None:
        unit = deployment.root / "etc/systemd/system/rinetd-run.service"
        done = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
        )
        assert (done.returncode, done.stderr) == (0, ""), done.stderr


def test_without_a_dynamic_user_root_writes_only_the_log_and_pid_folders(
    deployment: Deployment,
) -> None:
    text = _unit(deployment)
    root = deployment.root
    assert "DynamicUser" not in text and "LogsDirectory" not in text
    # The defaults: one worker (the runtime's default), dataplane user.
    assert "--workers" not in text
    assert "CAP_NET_ADMIN" not in text and "AF_NETLINK" not in text
    assert "ProcSubset=pid\n" in text and "--kernel-cleanup" not in text
    assert "RuntimeDirectory=rinetd-run\n" in text  # only the status file's folder
    assert f"ReadWritePaths={root / 'var/log'} {root / 'run'}\n" in text


def test_a_dynamic_user_refuses_log_and_pid_files_it_could_not_write(
    deployment: Deployment,
) -> None:
    done = deployment.play(deployment.variables(rinetd_dynamic_user=True))
    assert done.returncode != 0
    assert "set rinetd_dynamic_user to false" in done.stdout, done.stdout
    assert deployment.files() == {}


def test_ansible_lint_production_profile() -> None:
    done = subprocess.run(
        [str(BIN / "ansible-lint"), "--profile", "production", "--offline", str(ROLE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _shown(value: Any) -> str:
    """A default as the role's README writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value)
    return '""' if value == "" else str(value)


def test_readme_defaults_and_argument_specs_agree() -> None:
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    readme = (ROLE / "README.md").read_text()
    assert set(defaults) == set(options)
    table = dict(re.findall(r"^\| `(rinetd_\w+)` \| `([^`]*)` \|$", readme, re.M))
    assert table == {name: _shown(value) for name, value in defaults.items()}
    for name, value in defaults.items():
        assert options[name].get("default") == value, name
    # A paragraph about one variable says its default in words too: the same one.
    said = 0
    for paragraph in readme.split("\n\n"):
        named = set(re.findall(r"`(rinetd_\w+)`", paragraph))
        default = re.findall(r"[Dd]efault `([^`]*)`\.", paragraph)
        if paragraph.startswith("`rinetd_") and len(named) == 1 and default:
            (name,) = named
            assert default[-1] == _shown(defaults[name]), (name, default)
            said += 1
    assert said >= 8  # the paragraphs of one variable each
    handlers = yaml.safe_load((ROLE / "handlers/main.yml").read_text())
    tasks = "".join(path.read_text() for path in (ROLE / "tasks").glob("*.yml"))
    for handler in handlers:
        assert handler.get("listen", handler["name"]) in tasks, handler["name"]


# -- defects found by an experienced user (issue 13), each run for real ---------------


def test_a_string_where_a_list_is_expected_fails_closed(deployment: Deployment) -> None:
    """`-e '{"rinetd_allow": "10.*"}'` once wrote `allow 1`, `allow 0`, ...: now it fails."""
    done = deployment.play(deployment.variables(rinetd_allow="10.*"))
    assert done.returncode != 0
    assert "rinetd_allow must be a list (of patterns), not str" in done.stdout
    assert deployment.files() == {}
    rule = {**deployment.rule(deployment.ports[0]), "allow": "10.*"}
    done = deployment.play(deployment.variables([rule]))
    assert done.returncode != 0
    assert "rinetd_rules[0]: a rule is a mapping, and its allow and deny" in done.stdout
    assert deployment.files() == {}


def test_string_booleans_from_the_command_line_are_booleans(deployment: Deployment) -> None:
    rule = {**deployment.rule(deployment.ports[0]), "connect_address": "no-such-host.invalid"}
    done = deployment.play(
        deployment.variables([rule]),
        "-e",
        "rinetd_log_common=false",
        "-e",
        "rinetd_resolve_on_controller=false",
        "-e",
        "rinetd_manage_service=false",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    conf = (deployment.root / "etc/rinetd/rinetd.conf").read_text()
    assert "logcommon" not in conf  # "false" is false, not a non-empty string
    assert "no-such-host.invalid" in conf  # names were not resolved on the controller


def test_a_stale_pid_file_never_signals_another_process(deployment: Deployment) -> None:
    assert deployment.play(deployment.variables()).returncode == 0
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        pidfile = deployment.root / "run/rinetd-run.pid"
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(f"{bystander.pid}\n")
        two = [deployment.rule(deployment.ports[0]), deployment.rule(deployment.ports[1])]
        done = deployment.play(deployment.variables(two))
        assert done.returncode == 0, done.stdout
        assert "rinetd-run is not running" in done.stdout
        assert bystander.poll() is None  # alive: it was not sent SIGHUP
    finally:
        bystander.kill()
        bystander.wait()


def test_controller_tasks_never_become() -> None:
    """Tasks delegated to the controller run as the user who runs the play, whatever the
    play's `become`: nobody should need sudo on their laptop or CI runner."""

    def tasks(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            yield item
            yield from tasks(item.get("block", []) + item.get("always", []))

    phases = {
        path.name: yaml.safe_load(path.read_text()) for path in (ROLE / "tasks").glob("*.yml")
    }
    for name in ("controller.yml", "host.yml", "main.yml"):  # every phase that delegates
        assert any(t.get("delegate_to") == "localhost" for t in tasks(phases[name])), name
    role = [task for phase in phases.values() for task in phase]
    delegated = [t for t in tasks(role) if t.get("delegate_to") == "localhost"]
    assert delegated and all(t.get("become") is False for t in delegated), [
        t["name"] for t in delegated if t.get("become") is not False
    ]


def test_existing_directories_keep_their_mode(deployment: Deployment) -> None:
    shared = deployment.root / "var/log"
    shared.mkdir(parents=True)
    shared.chmod(0o775)  # as Ubuntu's /var/log
    done = deployment.play(deployment.variables())
    assert done.returncode == 0, done.stdout
    assert (shared.stat().st_mode & 0o777) == 0o775
    assert (deployment.root / "etc/rinetd").stat().st_mode & 0o777 == 0o755  # made new


@pytest.mark.parametrize(
    ("variable", "said"),
    [
        ("rinetd_rinetdc", "rinetdc was not found on the controller"),
        ("rinetd_python", "rinetd_python /nonexistent/tool on the host cannot be run"),
    ],
)
def test_a_missing_program_is_said_and_nothing_changes(
    deployment: Deployment, variable: str, said: str
) -> None:
    """rinetdc on the controller, the host's Python (3.11+): checked before anything."""
    done = deployment.play(deployment.variables(**{variable: "/nonexistent/tool"}))
    assert done.returncode != 0
    assert said in done.stdout
    assert deployment.files() == {}


def test_a_raw_configuration_s_own_pid_file_is_the_one_used(
    deployment: Deployment, tmp_path: Path
) -> None:
    pidfile = tmp_path / "elsewhere" / "own.pid"
    first = f"127.0.0.1 {deployment.ports[0]} 127.0.0.1 {deployment.echo_port}\n"
    text = first + f"pidlogfile {pidfile}\n"
    assert deployment.play(deployment.variables([], rinetd_config_text=text)).returncode == 0
    deployment.start()
    assert pidfile.read_text().strip() == str(deployment.runtime.pid if deployment.runtime else 0)
    second = text + f"127.0.0.1 {deployment.ports[1]} 127.0.0.1 {deployment.echo_port}\n"
    done = deployment.play(deployment.variables([], rinetd_config_text=second))
    assert done.returncode == 0, done.stdout
    assert "Reload a running rinetd-run through its pid file." in done.stdout
    assert forwards(deployment.ports[1])  # the reload reached it: the new rule is live


def test_warnings_are_shown_and_strict_fails_on_them(deployment: Deployment) -> None:
    variables = deployment.variables(rinetd_deny=["*"])  # W102: no rule can be reached
    done = deployment.play(variables)
    assert done.returncode == 0, done.stdout
    assert "warning[W102]" in done.stdout
    strict = deployment.play({**variables, "rinetd_strict": True})
    assert strict.returncode != 0 and "warning[W102]" in strict.stdout


def test_the_deployed_rule_set_does_not_depend_on_the_controller_dns(
    deployment: Deployment,
) -> None:
    rule = {**deployment.rule(deployment.ports[0]), "connect_address": "localhost"}
    assert deployment.play(deployment.variables([rule])).returncode == 0
    rules = json.loads((deployment.root / "etc/rinetd/rules.json").read_text())
    assert rules["resolved"] is False
    assert rules["rules"][0]["connect"] == {
        "address": None,  # resolved by the runtime on the host, not baked in here
        "host": "localhost",
        "port": deployment.echo_port,
        "protocol": "tcp",
        "service": None,
    }
    deployment.start()
    assert forwards(deployment.ports[0])


def test_the_collection_builds_installs_and_deploys(deployment: Deployment, tmp_path: Path) -> None:
    """Built with ansible-galaxy, installed from the built file, used by its full name."""
    galaxy = str(BIN / "ansible-galaxy")
    built = subprocess.run(
        [galaxy, "collection", "build", str(ROOT / "ansible"), "--output-path", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = tmp_path.glob("rinetdc-rinetd-*.tar.gz")
    installed = tmp_path / "collections"
    done = subprocess.run(
        [galaxy, "collection", "install", str(tarball), "-p", str(installed)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (installed / "ansible_collections/rinetdc/rinetd/roles/rinetd/tasks/main.yml").exists()
    play = deployment.play(
        deployment.variables(),
        playbook=PLAYBOOK.with_name("playbook_collection.yml"),
        collections=installed,
    )
    assert play.returncode == 0, play.stdout + play.stderr
    assert "rinetdc.rinetd.rinetd" in play.stdout
    deployment.start()
    assert forwards(deployment.ports[0])


def test_diagnostics_name_the_configuration_not_a_temporary_file(deployment: Deployment) -> None:
    broken = [deployment.rule(deployment.ports[0], connect_port=99999)]
    done = deployment.play(deployment.variables(broken))
    assert done.returncode != 0
    assert "rinetd.conf:" in done.stdout and "error[E006]" in done.stdout
    assert "rinetd-role-" not in done.stdout  # the work directory, deleted after the play


def test_the_controller_phase_alone_checks_without_touching_the_host(
    deployment: Deployment,
) -> None:
    done = deployment.play(deployment.variables(), "--tags", "rinetd_controller")
    assert done.returncode == 0, done.stdout
    assert "Compile the configuration with rinetdc on the controller." in done.stdout
    assert deployment.files() == {}
    broken = [deployment.rule(deployment.ports[0], connect_port=99999)]
    failed = deployment.play(deployment.variables(broken), "--tags", "rinetd_controller")
    assert failed.returncode != 0 and "error[E006]" in failed.stdout


def test_the_text_diff_names_the_files_on_the_host(deployment: Deployment) -> None:
    assert deployment.play(deployment.variables()).returncode == 0
    other = [deployment.rule(deployment.ports[1])]
    done = deployment.play(deployment.variables(other), "--check", "--diff")
    assert done.returncode == 0, done.stdout
    root = deployment.root
    assert f"+++ after: {root / 'etc/rinetd/rinetd.conf'}" in done.stdout, done.stdout
    assert f"+++ after: {root / 'etc/rinetd/rules.json'}" in done.stdout
    assert "rinetd-role-" not in done.stdout


def test_the_runtime_is_packed_once_for_the_whole_play(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Three hosts and a fourth whose rule is broken: the runtime is packed once, the
    three deploy, the fourth fails with nothing changed, and the controller keeps no
    work directory (each host's is in the play's, removed once at the end)."""
    hosts = {}
    for name in ("gw1", "gw2", "gw3", "gw4"):
        root = tmp_path / name
        root.mkdir()
        host = Deployment(root, deployment.echo_port)
        variables = host.variables()
        if name == "gw4":
            variables["rinetd_rules"] = [host.rule(host.ports[0], connect_port=99999)]
        hosts[name] = {"ansible_connection": "local", **variables}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    controller_tmp = tmp_path / "controller-tmp"
    controller_tmp.mkdir()
    done = deployment.play({}, inventory=str(inventory), env_extra={"TMPDIR": str(controller_tmp)})
    assert done.returncode != 0 and "error[E006]" in done.stdout, done.stdout
    assert re.search(r"^gw4 +: .*failed=1", done.stdout, re.M), done.stdout
    packing = done.stdout.split("Pack the runtime into a zipapp", 1)[1].split("TASK [", 1)[0]
    assert len(re.findall(r"^(?:ok|changed): \[gw\d", packing, re.M)) == 1, packing
    compiling = done.stdout.split("Compile the configuration", 1)[1].split("TASK [", 1)[0]
    assert len(re.findall(r"^(?:ok|changed): \[gw\d", compiling, re.M)) == 3, compiling
    deployed = ("gw1", "gw2", "gw3")
    runtimes = {
        (tmp_path / n / "usr/local/lib/rinetd/rinetd-run.pyz").read_bytes() for n in deployed
    }
    assert len(runtimes) == 1 and next(iter(runtimes)).startswith(b"#!/usr/bin/env python3\n")
    assert [path for path in (tmp_path / "gw4").rglob("*") if path.is_file()] == []
    assert list(controller_tmp.iterdir()) == []  # the play's work directory, with each host's


def test_a_rule_s_options_are_deployed_and_enforced(deployment: Deployment) -> None:
    rule = {**deployment.rule(deployment.ports[0]), "max_connections": 1, "keepalive": False}
    # A pool of two members, the first refusing: the rule forwards to the second.
    refusing = free_port()
    to_pool = {
        "bind_address": "127.0.0.1",
        "bind_port": deployment.ports[1],
        "connect_pool": "echo",
        "balance": "leastconn",
        "health_interval": 0,
    }
    pools = [
        {
            "name": "echo",
            "members": [
                {"host": "127.0.0.1", "port": refusing, "weight": 2},
                {"host": "127.0.0.1", "port": deployment.echo_port, "max_connections": 10},
            ],
        }
    ]
    variables = deployment.variables([rule, to_pool], rinetd_idle_timeout=600, rinetd_pools=pools)
    done = deployment.play(variables)
    assert done.returncode == 0, done.stdout
    conf = (deployment.root / "etc/rinetd/rinetd.conf").read_text()
    assert "idle-timeout 600\n" in conf
    assert "[max-connections=1, keepalive=off]" in conf
    assert f"pool echo 127.0.0.1 {refusing} [weight=2]\n" in conf
    assert (
        f"127.0.0.1 {deployment.ports[1]} @echo/tcp [balance=leastconn, health-interval=0]" in conf
    )
    deployment.start()
    for _ in range(3):
        assert forwards(deployment.ports[1])
    with socket.create_connection(("127.0.0.1", deployment.ports[0]), timeout=5) as first:
        first.sendall(b"one")
        assert first.recv(3) == b"one"
        assert not forwards(deployment.ports[0])  # the second is over the rule's limit
    log = deployment.root / "var/log/rinetd-run.log"
    wait_until(lambda: "limit-exceeded" in log.read_text(), "a limit-exceeded log line")


def test_a_mistyped_option_fails_before_anything_changes(deployment: Deployment) -> None:
    rule = {**deployment.rule(deployment.ports[0]), "proxy_protocol": "v3"}
    done = deployment.play(deployment.variables([rule]))
    assert done.returncode != 0 and "proxy_protocol" in done.stdout
    assert deployment.files() == {}
    over = {**deployment.rule(deployment.ports[0]), "connect_timeout": 0}
    done = deployment.play(deployment.variables([over]))
    assert done.returncode != 0 and "error[E007]" in done.stdout
    assert deployment.files() == {}


def test_json_logs_to_standard_output_need_no_log_folder(deployment: Deployment) -> None:
    variables = deployment.variables(
        rinetd_log_json=True,
        rinetd_logfile="-",
        rinetd_dynamic_user=True,
        rinetd_pidfile="/run/rinetd-run/rinetd-run.pid",
    )
    done = deployment.play(variables)
    assert done.returncode == 0, done.stdout
    conf = (deployment.root / "etc/rinetd/rinetd.conf").read_text()
    assert "logjson\n" in conf and "logfile -\n" in conf
    unit = (deployment.root / "etc/systemd/system/rinetd-run.service").read_text()
    assert "LogsDirectory" not in unit and "RuntimeDirectory=rinetd-run\n" in unit
    both = deployment.play(deployment.variables(rinetd_log_json=True, rinetd_log_common=True))
    assert both.returncode != 0 and "error[E018]" in both.stdout


def test_the_real_logrotate_loses_and_splits_no_line_under_traffic(
    deployment: Deployment, tmp_path: Path
) -> None:
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not Path(logrotate).exists():
        pytest.fail("logrotate is missing: ./test.sh as root installs it")
    assert deployment.play(deployment.variables()).returncode == 0
    snippet = deployment.root / "etc/logrotate.d/rinetd-run"
    assert "postrotate" in snippet.read_text()
    deployment.start()
    log = deployment.root / "var/log/rinetd-run.log"
    sent = 0
    state = tmp_path / "logrotate.state"
    for rotation in range(3):
        for _ in range(100):
            assert forwards(deployment.ports[0])
            sent += 1
        done = subprocess.run(
            [logrotate, "-f", "-s", str(state), str(snippet)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert (deployment.root / "var/log/rinetd-run.log.1").exists(), rotation
    for _ in range(50):
        assert forwards(deployment.ports[0])
        sent += 1
    deployment.stop()  # flushes the log
    lines = []
    for path in sorted(log.parent.glob("rinetd-run.log*")):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines += data.decode().splitlines()
    assert len(lines) == 2 * sent  # opened and done-... for each connection
    assert all(len(line.split("\t")) == 9 for line in lines)  # none split
    assert len(list(log.parent.glob("rinetd-run.log*"))) == 4  # the log, .1, .2.gz, .3.gz
