"""The same configuration and scenarios against rinetd-run and Debian's rinetd 0.73.

Everything observable is compared: who gets through, the bytes, and every log
field but the time. Where we differ on purpose (the reference's section 5),
the difference is spelt out here and asserted, not ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.conftest import ECHO, ECHO_GUARDED, HTTP
from tests.integration.daemons import Daemon, agent, start_ours, start_rinetd
from tests.integration.topology import Topology

C1_FW, C2_FW = "10.61.4.1", "10.61.9.1"

CONFIG = f"""\
allow 10.61.*
0 8000 10.62.0.2 {ECHO}
0 8003 10.62.0.2 {ECHO_GUARDED}
allow 10.61.?.*
deny 10.61.9.20
0 www 10.62.0.2 {HTTP}
allow 10.61.4.*
logfile LOG
"""

# (name, client role, how to try)
Scenario = tuple[str, str, Callable[[Topology], dict[str, Any]]]


def _echo(role: str, host: str, port: str, size: int) -> Callable[[Topology], dict[str, Any]]:
    args = ("echo-client", "--host", host, "--port", port, "--size", str(size), "--timeout", "5")
    return lambda net: agent(net, role, *args)


def _http(role: str, host: str) -> Callable[[Topology], dict[str, Any]]:
    return lambda net: agent(net, role, "http-get", "--url", f"http://{host}/index.html")


SCENARIOS: list[Scenario] = [
    ("partner, open rule", "c1", _echo("c1", C1_FW, "8000", 1000)),
    ("other, open rule", "c2", _echo("c2", C2_FW, "8000", 1000)),
    ("partner, guarded rule", "c1", _echo("c1", C1_FW, "8003", 10)),
    ("other, guarded rule (denied)", "c2", _echo("c2", C2_FW, "8003", 10)),
    ("partner, www", "c1", _http("c1", C1_FW)),
    ("other, www (partners only)", "c2", _http("c2", C2_FW)),
]


def _through(result: dict[str, Any]) -> bool:
    return result["error"] is None and result["bytes"] > 0


def _run(net: Topology, daemon: Daemon) -> tuple[dict[str, bool], list[tuple[str, ...]]]:
    """Each scenario in turn, each waiting for its own log lines before the next."""
    through, expected = {}, 0
    for name, _role, attempt in SCENARIOS:
        through[name] = _through(attempt(net))
        expected += 2 if through[name] else 1
        daemon.log_lines(expected, timeout=30)
    return through, [tuple(line.split("\t")[1:]) for line in daemon.log_lines(expected)]


def test_rinetd_run_and_rinetd_073_side_by_side(net: Topology) -> None:
    ours = start_ours(net, CONFIG, "differential-ours")
    try:
        our_through, our_log = _run(net, ours)
    finally:
        ours.stop()
    theirs = start_rinetd(net, CONFIG, "differential-rinetd", ["8000", "8003", "80"])
    try:
        their_through, their_log = _run(net, theirs)
    finally:
        theirs.stop()

    # Who gets through: the same.
    assert their_through == our_through
    assert our_through == {
        "partner, open rule": True,
        "other, open rule": True,
        "partner, guarded rule": True,
        "other, guarded rule (denied)": False,
        "partner, www": True,
        "other, www (partners only)": False,
    }

    # The log, field by field but the time.
    www = ("0", "80", "10.62.0.2", str(HTTP))
    echo = ("0", "8000", "10.62.0.2", str(ECHO))
    guarded = ("0", "8003", "10.62.0.2", str(ECHO_GUARDED))
    common = [
        ("10.61.4.10", *echo, "0", "0", "opened"),
        ("10.61.4.10", *echo, "1000", "1000", "done-remote-closed"),
        ("10.61.9.20", *echo, "0", "0", "opened"),
        ("10.61.9.20", *echo, "1000", "1000", "done-remote-closed"),
        ("10.61.4.10", *guarded, "0", "0", "opened"),
        ("10.61.4.10", *guarded, "10", "10", "done-remote-closed"),
    ]
    partner_www = our_log[7:9]
    assert partner_www[0] == ("10.61.4.10", *www, "0", "0", "opened")
    assert partner_www[1][:5] == ("10.61.4.10", *www) and partner_www[1][7] == "done-local-closed"
    assert our_log == [
        *common,
        ("10.61.9.20", *guarded, "0", "0", "denied"),  # 0.73: "(null)"
        *partner_www,
        ("10.61.9.20", *www, "0", "0", "not-allowed"),
    ]
    # 0.73's message table is off by one: a deny match logs "(null)", an allow
    # miss logs "denied". Everything else is the same, byte counts included.
    assert their_log == [
        *common,
        ("10.61.9.20", *guarded, "0", "0", "(null)"),
        *partner_www,
        ("10.61.9.20", *www, "0", "0", "denied"),
    ]


NO_GLOBAL = f"""0 8000 10.62.0.2 {ECHO}
deny 10.61.9.20
allow 10.61.*
logfile LOG
"""


def test_first_rule_access_line_without_global_rules(net: Topology) -> None:
    """With no global access lines, Debian's 0.73 loses the first per-rule line
    (upstream issue #23); we apply it, so the other client is denied."""
    try_other = _echo("c2", C2_FW, "8000", 100)
    ours = start_ours(net, NO_GLOBAL, "no-global-ours")
    try:
        ours_result = try_other(net)
        our_log = [tuple(line.split("\t")[1:]) for line in ours.log_lines(1)]
    finally:
        ours.stop()
    theirs = start_rinetd(net, NO_GLOBAL, "no-global-rinetd", ["8000"])
    try:
        their_result = try_other(net)
        their_log = [tuple(line.split("\t")[1:]) for line in theirs.log_lines(2)]
    finally:
        theirs.stop()
    rule = ("10.61.9.20", "0", "8000", "10.62.0.2", str(ECHO))
    assert not _through(ours_result)
    assert our_log == [(*rule, "0", "0", "denied")]
    assert _through(their_result)
    assert their_log == [(*rule, "0", "0", "opened"), (*rule, "100", "100", "done-remote-closed")]
