"""``kernel_choice``: which rules ``dataplane kernel`` hands to nftables, and the one
reason each other rule stays in rinetd-run; the compiled rule set records it."""

from __future__ import annotations

import json

import pytest

from rinetd_run.document import read
from rinetd_run.kernel_choice import kernel_rules, user_space_reason
from rinetd_run.ruleset import RuleSet
from rinetdc.check import check
from rinetdc.emit import seal
from rinetdc.resolve import NoResolver


def _ruleset(text: str) -> RuleSet:
    result = check(text, NoResolver(), name="rinetd.conf")
    assert result.errors == 0, result.diagnostics
    return result.ruleset


def _reason(text: str) -> str | None:
    ruleset = _ruleset(text)
    return user_space_reason(ruleset, ruleset.rules[-1])


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0.0 80 10.0.0.2 8080\n",
        "10.0.0.1 53/udp 10.0.0.53 53/udp\n",
        "0 80 10.0.0.2 80 [src=10.0.0.1]\n",
        "fd00::1 80 fd00::2 80\n",
        "allow 10.1.*\ndeny 10.1.2.3\n0.0.0.0 80 10.0.0.2 80\nallow 1*1\n",
        # The role writes every setting, at its default: still the kernel's.
        "connect-timeout 30\nidle-timeout 0\nkeepalive off\nmax-connections 0\n"
        "max-udp-connections 5000\ndns-refresh 0\n0.0.0.0 80 10.0.0.2 80\n",
        # A setting for the other protocol changes nothing for this one.
        "idle-timeout 60\n0.0.0.0 53/udp 10.0.0.53 53/udp\n",
        "0.0.0.0 80 backend.example 80\n",  # known once resolved
        "logfile /var/log/r.log\nlogjson\n0 80 10.0.0.2 80\n",  # lines from conntrack
        "metrics 127.0.0.1 9100\n0 80 10.0.0.2 80\n",  # counted from conntrack too
        "0 80 backend.example 80 [dns-refresh=60]\n",  # the table follows the name
        "0 53/udp 10.0.0.2 53/udp [timeout=30]\n",  # conntrack's timeout policy
        ":: 80 fd00::2 80\n",  # its IPv6 clients; the IPv4 ones reach rinetd-run
        # Counted by the table; a client over a limit is refused by rinetd-run.
        "10.0.0.1 80 10.0.0.2 80 [max-connections=9, max-connections-per-client=2]\n",
    ],
)
def test_rules_the_kernel_forwards_as_rinetd_run_would(text: str) -> None:
    assert _reason(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.0.0.0 80 10.0.0.2 80/udp\n", "the bind and connect protocols differ"),
        ("0 80 10.0.0.2 80 [proxy-protocol=v2]\n", "proxy-protocol: rinetd-run writes the header"),
        ("0 80 10.0.0.2 80 [idle-timeout=60]\n", "idle-timeout=60: conntrack would forget"),
        ("connect-timeout 5\n0 80 10.0.0.2 80\n", "connect-timeout=5: the kernel cannot give up"),
        ("0 80 10.0.0.2 80 [max-connections=9]\n", "max-connections=9 on a 0 bind"),
        ("127.0.0.1 80 10.0.0.2 80\n", "a loopback bind address"),
        ("0.0.0.0 80 127.0.0.1 80\n", "a loopback connect address"),
        ("0 80 10.0.0.2 80 [src=127.0.0.1]\n", "a loopback src address"),
        (":: 80 10.0.0.2 80\n", "the bind and connect addresses are of different IP"),
        (":: 80 fd00::2 80 [max-connections=3]\n", "max-connections=3 on a :: bind"),
        ("0.0.0.0 80 fd00::2 80\n", "the bind and connect addresses are of different IP versions"),
        ("fd00::1 80 fd00::2 80\nallow fd00::*\n", "access patterns on an IPv6 bind"),
        ("0 80 10.0.0.2 80\nallow *1?2*3?*\n", "access pattern *1?2*3?* needs too many"),
    ],
)
def test_each_rule_that_stays_in_user_space_says_why(text: str, reason: str) -> None:
    found = _reason(text)
    assert found is not None and found.startswith(reason), found


def test_only_dataplane_kernel_hands_rules_to_the_kernel() -> None:
    text = "0 80 10.0.0.2 80\n0 81 10.0.0.2 81 [proxy-protocol=v1]\n0 82 name.example 80\n"
    ruleset = _ruleset(text)
    assert kernel_rules(ruleset, "user") == ()
    # A name not resolved yet is not the kernel's: rinetd-run asks again once resolved.
    assert [rule.bind.port for rule in kernel_rules(ruleset, "kernel")] == [80]
    assert ruleset.global_value("dataplane") == "user"
    assert _ruleset("dataplane kernel\n" + text).global_value("dataplane") == "kernel"


def test_the_compiled_rule_set_records_each_reason_and_reads_it_back() -> None:
    ruleset = _ruleset("dataplane kernel\n0 80 10.0.0.2 80\n0 81 10.0.0.2 81 [idle-timeout=5]\n")
    sealed = seal(ruleset)
    document = json.loads(sealed)
    assert document["version"] == 4
    assert [rule["user_space"] for rule in document["rules"]] == [
        None,
        "idle-timeout=5: conntrack would forget an idle connection silently; rinetd-run "
        "closes both sides and logs done-idle-timeout",
    ]
    assert read(sealed).rules == ruleset.rules
