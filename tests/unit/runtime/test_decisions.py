"""The runtime's decisions, as plain functions: access, log lines, reload plans, loading."""

from __future__ import annotations

import errno
import json
import re
import time
from pathlib import Path

import pytest

from rinetd_run import logline
from rinetd_run.access import matches, verdict
from rinetd_run.budget import Budget
from rinetd_run.canonical import dumps
from rinetd_run.document import read
from rinetd_run.logline import connect_failure
from rinetd_run.plan import plan_reload
from rinetd_run.ruleset import AccessRule, RuleSetError, resolve
from tests.helpers import CORPUS, compile_config

A, D = "allow", "deny"


@pytest.mark.parametrize(
    ("pattern", "address", "expected"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.*", "127.0.0.15", True),
        ("127.0.0.?", "127.0.0.15", False),
        ("127.0.0.??", "127.0.0.15", True),
        ("*", "::1", True),
        ("10.*", "110.0.0.1", False),
        ("*.1", "10.0.0.1", True),
        ("::FFFF:*", "::ffff:10.0.0.1", False),  # case-sensitive
        ("[::1]", "[::1]", True),  # brackets are plain characters
        ("[::1]", ":", False),
        ("::ffff:10.*", "::ffff:10.9.9.9", True),
    ],
)
def test_glob_matching(pattern: str, address: str, expected: bool) -> None:
    assert matches(pattern, address) is expected


def _rules(*pairs: tuple[str, str]) -> tuple[AccessRule, ...]:
    return tuple(AccessRule(kind, pattern, 1) for kind, pattern in pairs)  # type: ignore[arg-type]


def test_verdict_follows_the_four_steps_in_order() -> None:
    glob = _rules((A, "10.*"), (D, "10.0.0.66"))
    rule = _rules((A, "10.0.*"), (D, "10.0.0.7"))
    assert verdict(glob, rule, "192.168.0.1") == "not-allowed"  # 1. no global allow matches
    assert verdict(glob, rule, "10.0.0.66") == "denied"  # 2. a global deny matches
    assert verdict(glob, rule, "10.1.0.1") == "not-allowed"  # 3. no rule allow matches
    assert verdict(glob, rule, "10.0.0.7") == "denied"  # 4. a rule deny matches
    assert verdict(glob, rule, "10.0.0.8") == "allowed"
    assert verdict((), (), "anything") == "allowed"
    assert verdict(_rules((D, "1.*")), _rules((A, "1.2.3.4")), "1.2.3.4") == "denied"


EVENT = logline.Event("127.0.0.1", "0", 42001, "localhost", 41001, 6, 7, "done-remote-closed")
WHEN = time.struct_time((2026, 11, 25, 5, 27, 9, 2, 329, 0, "IST", 19800))


def test_tab_line_is_byte_compatible() -> None:
    assert logline.tab_line(WHEN, EVENT) == (
        "25/Nov/2026:05:27:09 \t127.0.0.1\t0\t42001\tlocalhost\t41001\t6\t7\tdone-remote-closed\n"
    )


def test_common_line_is_byte_compatible() -> None:
    assert logline.common_line(WHEN, EVENT) == (
        '127.0.0.1 - - [25/Nov/2026:05:27:09  +0530] "GET /rinetd-services/0/42001/'
        'localhost/41001/done-remote-closed HTTP/1.0" 200 7 - - - 6\n'
    )
    west = time.struct_time((2026, 1, 2, 3, 4, 5, 4, 2, 0, "X", -(3 * 3600 + 30 * 60)))
    assert "[02/Jan/2026:03:04:05  -0330]" in logline.common_line(west, EVENT)


def test_connect_failure_words() -> None:
    assert connect_failure(errno.ECONNREFUSED) is None  # logged as the backend closing
    assert connect_failure(errno.EMFILE) == "local-socket-failed -"
    assert connect_failure(errno.EADDRNOTAVAIL) == "local-connect-failed -"


def _document(**changes: object) -> str:
    document = json.loads((CORPUS / "valid" / "everything.json").read_text())
    document.pop("digest")
    document.update(changes)
    return dumps(document)


def test_reload_plan_keeps_opens_and_closes() -> None:
    ruleset = resolve(read(_document()), lambda host: "127.0.0.1")
    keys = [r.listener for r in ruleset.rules]
    current = [keys[0], keys[1], ("tcp", "127.0.0.1", 1)]
    plan = plan_reload(current, ruleset.rules)
    assert set(plan.keep) == {keys[0], keys[1]}
    assert set(plan.open) == set(keys[2:])
    assert plan.close == (("tcp", "127.0.0.1", 1),)


def test_loading_refuses_what_rinetdc_did_not_write(tmp_path: Path) -> None:
    assert len(read(_document()).rules) == 4
    with pytest.raises(RuleSetError, match="not valid JSON"):
        read(_document()[:-20])
    with pytest.raises(RuleSetError, match="version 5"):
        read(_document(version=5))
    edited = _document().replace('"port": 8443', '"port": 8444')
    with pytest.raises(RuleSetError, match="digest mismatch"):
        read(edited)
    with pytest.raises(RuleSetError, match="not a rinetdc rule set"):
        read("[]")
    with pytest.raises(RuleSetError, match="schema"):
        read(_document(rules=[{"line": 1}]))


def test_host_names_resolve_at_load() -> None:
    text = (CORPUS / "valid" / "hostnames.json").read_text()
    table = {"gateway.example.com": "127.0.0.1", "backend-1.internal.example.com": "10.0.0.1"}
    with pytest.raises(
        RuleSetError, match=re.escape('rule of line 3: cannot resolve host "a_b.example"')
    ):
        resolve(read(text), table.get)
    table |= {"a_b.example": "127.0.0.2", "db": "10.0.0.2"}
    rules = resolve(read(text), table.get).rules
    assert [r.bind.address for r in rules] == ["127.0.0.1", "127.0.0.2"]
    assert rules[0].bind.host == "gateway.example.com"  # logs keep the written name


def test_a_pool_member_that_does_not_resolve_is_left_without_an_address(tmp_path: Path) -> None:
    """Down, not a failed load, while another member resolves; a name asked once a load
    however many members carry it; no member resolving fails the load."""
    dead = "".join(f"pool web dead.example {port}\n" for port in (80, 81, 82))
    conf = dead + "pool web 10.0.0.1 80\n0 80 @web\n"
    asked: list[str] = []

    def lookup(host: str) -> None:
        asked.append(host)

    ruleset = resolve(read(compile_config(conf, tmp_path, "--no-resolve").read_text()), lookup)
    assert [m.address for m in ruleset.pools[0].members] == [None, None, None, "10.0.0.1"]
    assert asked == ["dead.example"]
    lone = "pool web dead.example 80\n0 80 @web\n"
    with pytest.raises(RuleSetError, match='pool member of line 1: cannot resolve host "dead'):
        resolve(read(compile_config(lone, tmp_path, "--no-resolve").read_text()), lookup)


def test_the_descriptor_budget_keeps_a_reserve_and_half_for_tcp() -> None:
    budget = Budget(limit=1000, base=100)
    assert budget.reserve == 50 and budget.usable == 850
    assert budget.udp_may_open(tcp_links=0, udp_sessions=424)
    assert not budget.udp_may_open(tcp_links=0, udp_sessions=425)  # at most half for UDP
    assert budget.tcp_may_accept(tcp_links=211, udp_sessions=425)  # TCP has its half
    assert budget.tcp_may_accept(tcp_links=424, udp_sessions=0)  # and the rest when free
    assert not budget.tcp_may_accept(tcp_links=425, udp_sessions=0)
    assert not budget.udp_may_open(tcp_links=400, udp_sessions=50)  # the total holds too
    assert Budget(limit=32).reserve == 8  # a tiny limit keeps most of itself usable
    assert Budget(limit=10, base=100).usable == 0
    assert Budget(limit=10, base=100, enabled=False).tcp_may_accept(5, 5)


@pytest.mark.parametrize(
    "word",
    [
        logline.OPENED, logline.LOCAL_CLOSED, logline.REMOTE_CLOSED, logline.NOT_ALLOWED,
        logline.DENIED, logline.ACCEPT_FAILED, logline.LOCAL_SOCKET_FAILED,
        logline.LOCAL_CONNECT_FAILED, logline.LIMIT_EXCEEDED, logline.IDLE_TIMEOUT,
    ],
)  # fmt: skip
def test_json_line_has_the_tab_line_s_facts_and_rfc3339_time(word: str) -> None:
    when = time.struct_time((2026, 11, 26, 3, 4, 5, 3, 330, 0), {"tm_gmtoff": 5400, "tm_zone": "X"})
    event = EVENT._replace(result=word, client_port=40123, line=7)
    line = logline.json_line(when, event)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "time": "2026-11-26T03:04:05+01:30",
        "client": "127.0.0.1",
        "client_port": 40123,
        "bind": "0",
        "bind_port": 42001,
        "connect": "localhost",
        "connect_port": 41001,
        "bytes_from_client": 6,
        "bytes_to_client": 7,
        "result": word,
        "line": 7,
    }
    tab = logline.tab_line(when, event).rstrip("\n").split("\t")
    assert tab[1:] == ["127.0.0.1", "0", "42001", "localhost", "41001", "6", "7", word]
