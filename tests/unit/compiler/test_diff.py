"""`rinetdc diff`: changes by meaning, and silence for changes that do not change behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rinetdc.check import check
from rinetdc.resolve import NoResolver
from rinetdc.semdiff import compare
from tests.helpers import run

BASE = (
    "allow 10.*\n"
    "0 80 10.0.0.2 8080\n"
    "allow 10.1.*\n"
    "deny 10.1.0.9\n"
    "0 53/udp 10.0.0.3 53/udp [timeout=30]\n"
    "logfile /var/log/rinetd.log\n"
    "pidlogfile /run/rinetd.pid\n"
)


def _changes(old: str, new: str) -> list[tuple[str, str, str, bool | None]]:
    before, after = check(old, NoResolver()), check(new, NoResolver())
    assert not before.errors and not after.errors
    return [(c.kind, c.where, c.text, c.widens) for c in compare(before.ruleset, after.ruleset)]


@pytest.mark.parametrize(
    "new",
    [
        # rules reordered, comments and blank lines, spacing, a service name for its port,
        # access lines reordered or repeated, `0` written as 0.0.0.0, logcommon absent both
        "# moved about\n"
        "allow 10.*\n"
        "\n"
        "0.0.0.0   53/udp 10.0.0.3 domain/udp [timeout=30]\n"
        "0\thttp\t10.0.0.2\t8080\n"
        "deny 10.1.0.9\n"
        "allow 10.1.*\n"
        "allow 10.1.*\n"
        "pidlogfile /run/rinetd.pid\n"
        "logfile /var/log/rinetd.log\n",
        BASE.replace("[timeout=30]", "[timeout=30, timeout=30]"),
    ],
    ids=["reordered-and-reworded", "repeated-option"],
)
def test_equivalent_configurations_say_nothing(new: str) -> None:
    assert _changes(BASE, new) == []


def test_every_kind_of_change_is_said() -> None:
    new = (
        "allow 10.*\n"
        "deny 10.66.*\n"  # global: fewer, for every rule
        "0 80 10.0.0.5 8080 [src=10.0.0.1]\n"  # connect and src changed
        "allow 10.1.*\n"
        "allow 10.2.*\n"  # more
        "0 53/udp 10.0.0.3 53/udp [timeout=60]\n"  # timeout; access: everyone now
        "0 8443 10.0.0.4 443\n"  # added
        "logfile /var/log/other.log\n"
        "logcommon\n"
    )
    assert _changes(BASE, new) == [
        ("global-access", "global", "admits fewer: deny 10.66.* (every rule)", False),
        ("connect", "0.0.0.0 80/tcp", "connect 10.0.0.2 8080/tcp -> 10.0.0.5 8080/tcp", None),
        ("src", "0.0.0.0 80/tcp", "src none -> 10.0.0.1", None),
        ("access", "0.0.0.0 80/tcp", "admits more: allow 10.2.*", True),
        ("access", "0.0.0.0 80/tcp", "admits more: no more deny 10.1.0.9", True),
        ("rule-added", "0.0.0.0 8443/tcp", "added: 0.0.0.0 8443/tcp -> 10.0.0.4 443/tcp", None),
        ("timeout", "0.0.0.0 53/udp", "timeout 30 -> 60 s", None),
        ("logfile", "logfile", "logfile /var/log/rinetd.log -> /var/log/other.log", None),
        ("log format", "log format", "log format tab -> common", None),
        ("pidfile", "pidfile", "pidfile /run/rinetd.pid -> none", None),
    ]


def test_access_lists_that_open_or_close_a_rule() -> None:
    rule = "0 80 10.0.0.2 80\n"
    assert _changes(rule, rule + "allow 10.1.*\n") == [
        ("access", "0.0.0.0 80/tcp", "admits only what it allows now: 10.1.*", False)
    ]
    assert _changes(rule + "allow 10.1.*\n", rule) == [
        ("access", "0.0.0.0 80/tcp", "admits everyone now: no allow line is left", True)
    ]
    # 10.1.? admits no one 10.1.* did not: only the narrowing is a change
    assert _changes(rule + "allow 10.1.*\n", rule + "allow 10.1.?\n") == [
        ("access", "0.0.0.0 80/tcp", "admits fewer: no more allow 10.1.*", False),
    ]
    removed = _changes(rule + "0 81 10.0.0.2 81\n", rule)
    assert removed == [
        ("rule-removed", "0.0.0.0 81/tcp", "removed: 0.0.0.0 81/tcp -> 10.0.0.2 81/tcp", None)
    ]


def test_a_timeout_on_a_tcp_rule_changes_nothing() -> None:
    assert _changes("0 80 10.0.0.2 80\n", "0 80 10.0.0.2 80 [timeout=5]\n") == []


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_command_exit_codes_formats_and_rule_sets(tmp_path: Path) -> None:
    old = _write(tmp_path, "old.conf", BASE)
    new = _write(tmp_path, "new.conf", BASE.replace("10.0.0.2 8080", "10.0.0.9 8080"))
    same = run("rinetdc", "diff", old, old)
    assert (same.returncode, same.stdout) == (0, "")
    changed = run("rinetdc", "diff", old, new)
    assert changed.returncode == 1
    assert changed.stdout == "~ 0.0.0.0 80/tcp: connect 10.0.0.2 8080/tcp -> 10.0.0.9 8080/tcp\n"
    document = json.loads(run("rinetdc", "diff", "--format", "json", old, new).stdout)
    assert document["equivalent"] is False and document["changes"][0]["kind"] == "connect"
    compiled = str(tmp_path / "old.json")
    assert run("rinetdc", "compile", "--no-resolve", old, "-o", compiled).returncode == 0
    assert run("rinetdc", "diff", compiled, old).returncode == 0  # a rule set and its source
    broken = _write(tmp_path, "broken.conf", "0 80\n")
    failed = run("rinetdc", "diff", old, broken)
    assert failed.returncode == 2 and "error[E001]" in failed.stderr


def test_options_are_compared_as_the_rule_runs_with_them() -> None:
    plain = "0 80 10.0.0.2 8080\n"
    # The defaults written out change nothing.
    assert _changes(plain, "keepalive on\n0 80 10.0.0.2 8080 [connect-timeout=30]\n") == []
    found = _changes(
        plain, "keepalive off\nmax-connections 9\n0 80 10.0.0.2 8080 [idle-timeout=5]\n"
    )
    assert found == [
        ("option", "0.0.0.0 80/tcp", "idle-timeout 0 -> 5", None),
        ("option", "0.0.0.0 80/tcp", "keepalive on -> off", None),
        ("max-connections", "max-connections", "max-connections none -> 9", None),
    ]


def test_a_pool_s_members_added_removed_and_reweighted_are_said() -> None:
    rule = "0 80 @web [balance=source]\n"
    old = "pool web 10.0.0.1 80\npool web 10.0.0.2 80 [weight=2]\npool web 10.0.0.3 80\n" + rule
    new = (
        "pool web 10.0.0.1 80\npool web 10.0.0.2 80 [weight=5, backup]\npool web 10.0.0.4 80\n"
        "0 80 @web [balance=leastconn]\n"
    )
    assert _changes(old, new) == [
        ("option", "0.0.0.0 80/tcp", "balance source -> leastconn", None),
        ("pool", "pool web", "member 10.0.0.2 80: weight 2 -> 5", None),
        ("pool", "pool web", "member 10.0.0.2 80: backup off -> on", None),
        ("pool", "pool web", "member removed: 10.0.0.3 80", None),
        ("pool", "pool web", "member added: 10.0.0.4 80", None),
    ]
    # The same pool in another order, and the default weight written: nothing.
    same = (
        "pool web 10.0.0.3 80 [weight=1]\npool web 10.0.0.1 80\npool web 10.0.0.2 80 [weight=2]\n"
    )
    assert _changes(old, same + rule) == []
    # A rule moved from one host to a pool.
    assert _changes(
        "pool web 10.0.0.1 80\n0 80 10.0.0.1 80\n", "pool web 10.0.0.1 80\n0 80 @web\n"
    ) == [("connect", "0.0.0.0 80/tcp", "connect 10.0.0.1 80/tcp -> @web/tcp", None)]
