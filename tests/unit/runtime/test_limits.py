"""A rule's connection counts without sockets: the limits in all and per client, the
client key of a dual-stack listener, and counts that go back down."""

from __future__ import annotations

from rinetd_run.limits import RuleLimits, client_key


def test_a_mapped_ipv4_client_counts_as_its_plain_address() -> None:
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_key("::ffff:1") == "::ffff:1"  # not a mapped IPv4 address
    assert client_key("2001:db8::1") == "2001:db8::1"


def test_the_limits_in_all_and_per_client() -> None:
    limits = RuleLimits()
    for _ in range(2):
        assert limits.admits("a", 3, 2)
        limits.add("a")
    assert not limits.admits("a", 3, 2)  # a has its 2
    assert limits.admits("b", 3, 2)
    limits.add("b")
    assert not limits.admits("c", 3, 2)  # 3 in all
    assert limits.admits("c", 0, 0)  # 0: no limit
    limits.remove("a")
    assert limits.admits("a", 3, 2) and limits.open == 2
    limits.remove("a")
    limits.remove("b")
    assert limits.open == 0 and limits.per_client == {}  # nothing kept for gone clients
