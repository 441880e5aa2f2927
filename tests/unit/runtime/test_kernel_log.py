"""``kernel_log``: conntrack's events about the kernel's flows as log events: which
line, when, with which result word and counts, and rule numbers that keep naming the
rule a connection was opened by across reloads."""

from __future__ import annotations

import socket
from dataclasses import replace

from rinetd_run import logline
from rinetd_run.conntrack_messages import CLOSE, DESTROY, NEW, TIME_WAIT, UPDATE, Flow
from rinetd_run.kernel_log import EXPIRED, RESET, KernelLog
from rinetd_run.ruleset import RuleSet
from rinetdc.check import check
from rinetdc.resolve import NoResolver


def _ruleset(text: str) -> RuleSet:
    result = check(text, NoResolver(), name="rinetd.conf")
    assert result.errors == 0, result.diagnostics
    return result.ruleset


RULES = _ruleset("0 80 10.0.0.2 8080\n0 53/udp 10.0.0.53 53/udp\n").rules


def _flow(kind: str, number: int = 1, **changes: object) -> Flow:
    fields: dict[str, object] = {
        "kind": kind,
        "id": 77,
        "mark": 0x52520000 | number,
        "family": socket.AF_INET,
        "protocol": 6,
        "client": "10.9.0.5",
        "client_port": 40000,
        "bind": "10.0.0.1",
        "bind_port": 80,
        "bytes_from_client": None,
        "bytes_to_client": None,
        "state": None,
        "closed_first": None,
    }
    fields.update(changes)
    return Flow(**fields)  # type: ignore[arg-type]


def _log() -> tuple[KernelLog, list[int]]:
    log = KernelLog()
    return log, log.numbers(RULES)


def test_a_tcp_connection_is_opened_then_done_when_tcp_says_so_with_the_kernel_s_counts() -> None:
    log, (tcp, _) = _log()
    opened = log.seen(_flow(NEW, tcp)).log
    assert opened is not None
    assert (opened.result, opened.client, opened.client_port) == ("opened", "10.9.0.5", 40000)
    assert (opened.bind_host, opened.bind_port, opened.connect_host, opened.line) == (
        "0", 80, "10.0.0.2", 1,
    )  # fmt: skip
    assert log.seen(_flow(UPDATE, tcp, state=4, closed_first="backend")) == (None, None)
    ended = _flow(UPDATE, tcp, state=TIME_WAIT, closed_first="backend")
    step = log.seen(ended)
    assert step.log is None and step.ask == ended
    counted = _flow(UPDATE, tcp, bytes_from_client=120, bytes_to_client=5000)
    done = log.counted(ended, counted)
    assert done is not None
    assert (done.result, done.bytes_from_client, done.bytes_to_client) == (
        logline.LOCAL_CLOSED, 120, 5000,
    )  # fmt: skip
    # Its entry is destroyed minutes later: no second done line.
    assert log.seen(_flow(DESTROY, tcp, bytes_from_client=120)).log is None


def test_the_result_word_says_only_what_the_kernel_knows() -> None:
    log, (tcp, udp) = _log()
    cases = [
        (_flow(UPDATE, tcp, state=TIME_WAIT, closed_first="client"), logline.REMOTE_CLOSED),
        (_flow(UPDATE, tcp, state=CLOSE), RESET),  # a reset: who sent it is not said
        (_flow(UPDATE, tcp, state=CLOSE, closed_first="client"), logline.REMOTE_CLOSED),
    ]
    for ended, word in cases:
        log.seen(_flow(NEW, tcp))
        done = log.counted(ended, _flow(UPDATE, tcp, bytes_from_client=1, bytes_to_client=1))
        assert done is not None and done.result == word
    # Never ended as TCP sees it: conntrack forgot it (a silent backend, idle too long).
    log.seen(_flow(NEW, tcp))
    done = log.seen(_flow(DESTROY, tcp)).log
    assert done is not None and done.result == EXPIRED
    # A UDP flow ends when conntrack's timeout forgets it, as a timed-out session does.
    log.seen(_flow(NEW, udp, protocol=17, id=5))
    done = log.seen(_flow(DESTROY, udp, protocol=17, id=5, bytes_from_client=40)).log
    assert done is not None and (done.result, done.bytes_from_client) == ("done-remote-closed", 40)
    assert done.protocol == "udp" and done.connect_port == 53


def test_an_end_whose_entry_is_gone_is_logged_by_its_destroy_with_the_end_s_word() -> None:
    log, (tcp, _) = _log()
    log.seen(_flow(NEW, tcp))
    ended = _flow(UPDATE, tcp, state=TIME_WAIT, closed_first="client")
    assert log.counted(ended, None) is None
    # An answer about another flow on the same tuple is not this flow's.
    log2, _ = _log()
    log2.seen(_flow(NEW, tcp))
    assert log2.counted(ended, _flow(UPDATE, tcp, id=78, bytes_from_client=9)) is None
    for each in (log, log2):
        done = each.seen(_flow(DESTROY, tcp, bytes_from_client=64, bytes_to_client=52)).log
        assert done is not None
        assert (done.result, done.bytes_from_client) == (logline.REMOTE_CLOSED, 64)


def test_flows_that_are_not_ours_are_ignored() -> None:
    log, _ = _log()
    for mark in (0, 0x12340001, 0x52530001):
        assert log.seen(_flow(NEW, mark=mark)) == (None, None)
    # Ours, but of a number no rule ever had: no line rather than a wrong one.
    assert log.seen(_flow(NEW, 999)).log is None


def test_numbers_name_the_same_rule_across_reloads_and_are_not_reused_at_once() -> None:
    log, (tcp, udp) = _log()
    log.seen(_flow(NEW, tcp))
    # A reload: the TCP rule's line moves (another rule now), the UDP rule stays.
    reloaded = _ruleset("0 81 10.0.0.3 8081\n0 53/udp 10.0.0.53 53/udp\n").rules
    new_tcp, same_udp = log.numbers(reloaded)
    assert same_udp == udp and new_tcp not in (tcp, udp)
    # The connection opened before the reload is logged with the rule it was opened by.
    done = log.seen(_flow(DESTROY, tcp)).log
    assert done is not None and (done.bind_port, done.connect_host) == (80, "10.0.0.2")
    opened = log.seen(_flow(NEW, new_tcp, id=80)).log
    assert opened is not None and (opened.bind_port, opened.connect_host) == (81, "10.0.0.3")


def test_numbers_stay_within_the_mark_s_low_half_and_never_repeat_in_one_rule_set() -> None:
    log, rule = KernelLog(), RULES[0]
    for round_ in range(3):
        # New connect addresses each round: new rules, 90,000 numbers given in all.
        rules = [
            replace(rule, connect=replace(rule.connect, host=f"10.0.{round_}.2", port=n + 1))
            for n in range(30000)
        ]
        numbers = log.numbers(rules)
        assert len(set(numbers)) == 30000
        assert all(0 < number <= 0xFFFF for number in numbers)


def test_flows_still_open_at_stop_are_logged_as_ended_from_outside() -> None:
    log, (tcp, _) = _log()
    log.seen(_flow(NEW, tcp))
    (still,) = log.still_open()
    done = log.stopped(still, _flow(UPDATE, tcp, bytes_from_client=10, bytes_to_client=20))
    assert done is not None and (done.result, done.bytes_to_client) == ("done-remote-closed", 20)
    assert log.still_open() == []
