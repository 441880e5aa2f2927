"""``kernel_table.render``: the nftables script for the rules the kernel takes (loaded
for real in tests/integration/test_kernel.py)."""

from __future__ import annotations

from rinetd_run.kernel_table import KernelRule, read_counters, render


def _rule(number: int = 1, **changes: object) -> KernelRule:
    fields: dict[str, object] = {
        "number": number,
        "protocol": "tcp",
        "version": 4,
        "bind": None,
        "port": 80,
        "connect": "10.0.0.2",
        "connect_port": 8080,
        "src": None,
        "denies": (),
        "allows": (),
        "line": 3,
    }
    fields.update(changes)
    return KernelRule(**fields)  # type: ignore[arg-type]


def test_one_transaction_replaces_the_whole_table() -> None:
    script = render([_rule()], frozenset(), "forwarding before: ipv4=1 ipv6=1")
    first, second, third = script.splitlines()[:3]
    assert (first, second) == ("table inet rinetd_run", "delete table inet rinetd_run")
    assert third == "table inet rinetd_run {"
    assert 'comment "forwarding before: ipv4=1 ipv6=1"' in script


def test_a_wildcard_bind_is_any_local_address_but_loopback_for_local_clients() -> None:
    script = render([_rule()], frozenset(), "c")
    assert "meta nfproto ipv4 fib daddr type local tcp dport 80 jump rule_1" in script
    assert "fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 80 jump rule_1" in script
    one = render([_rule(bind="10.0.0.1", protocol="udp")], frozenset(), "c")
    assert "ip daddr 10.0.0.1 udp dport 80 jump rule_1" in one


def test_denied_and_not_allowed_clients_are_not_dnat_d() -> None:
    rule = _rule(denies=("10.1.2.3",), allows=(("10.1.*",), ("10.1.2.*",)))
    script = render([rule], frozenset(), "c")
    deny = "@nh,96,8 { 10 } @nh,104,8 { 1 } @nh,112,8 { 2 } @nh,120,8 { 3 } return"
    assert deny in script
    assert "@nh,96,8 { 10 } @nh,104,8 { 1 } goto rule_1_allow_1" in script
    assert "@nh,96,8 { 10 } @nh,104,8 { 1 } @nh,112,8 { 2 } goto rule_1_nat" in script
    assert (
        "meta l4proto tcp counter ct mark set 0x52520001 ct event set new,protoinfo,destroy "
        "dnat ip to 10.0.0.2:8080"
    ) in script


def test_src_masquerade_and_the_forward_guard() -> None:
    rules = [_rule(1, src="10.0.0.1"), _rule(2, version=6, bind="fd00::1", connect="fd00::2")]
    script = render(rules, frozenset({4}), "c")
    assert "ct mark 0x52520001 snat ip to 10.0.0.1" in script
    assert "ct mark & 0xffff0000 == 0x52520000 masquerade" in script
    assert "dnat ip6 to [fd00::2]:8080" in script
    assert "ct mark & 0xffff0000 == 0x52520000 accept\n    meta nfproto ipv4 drop" in script
    assert "meta nfproto ipv6 drop" not in script
    unguarded = render(rules, frozenset(), "c")
    assert "drop" not in unguarded


def test_limits_are_counted_before_the_dnat_and_a_client_over_one_is_not_dnat_d() -> None:
    script = render([_rule(bind="10.0.0.1", most=9, most_per_client=2)], frozenset(), "c")
    assert "  set rule_1_clients { type ipv4_addr; size 65535; flags dynamic; }" in script
    nat = script[script.index("chain rule_1_nat") :]
    per_client = nat.index("add @rule_1_clients { ip saddr ct count over 2 } return")
    total = nat.index("ct count over 9 return")
    assert per_client < total < nat.index("dnat ip to")
    assert "ct count" not in render([_rule()], frozenset(), "c")
    six = render([_rule(version=6, bind="fd00::1", connect="fd00::2", most_per_client=1)],
                 frozenset(), "c")  # fmt: skip
    assert "type ipv6_addr" in six and "ip6 saddr ct count over 1" in six


def test_a_udp_rule_s_sessions_end_after_its_timeout_as_in_user_space() -> None:
    rules = [
        _rule(1, protocol="udp", timeout=72),
        _rule(2, protocol="udp", timeout=72, port=54),
        _rule(3, protocol="udp", timeout=5, port=55),
        _rule(4),  # TCP: conntrack's own
    ]
    script = render(rules, frozenset(), "c")
    policy = "ct timeout udp_ipv4_72s { protocol udp; l3proto ip; "
    assert script.count(policy) == 1  # one policy per timeout
    assert "policy = { unreplied: 5, replied: 5 }" in script
    assert script.count('ct timeout set "udp_ipv4_72s"') == 2
    assert script.count("ct timeout set") == 3


def test_each_rule_counts_what_the_table_forwards_in_a_counter_of_its_own() -> None:
    script = render([_rule(1), _rule(7)], frozenset(), "c")
    assert "  counter rule_1 { }\n  counter rule_7 { }\n" in script
    assert (
        "ct mark & 0xffff0000 == 0x52520000 counter name ct mark map "
        '{ 0x52520001 : "rule_1", 0x52520007 : "rule_7" }\n' in script
    )
    assert "counter name" not in render([], frozenset(), "c")
    # What `nft -j list counters table inet rinetd_run` said on this machine.
    listing = (
        '{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, '
        '{"counter": {"family": "inet", "name": "rule_1", "table": "rinetd_run", "handle": 2, '
        '"packets": 12, "bytes": 960}}, {"counter": {"family": "inet", "name": "rule_7", '
        '"table": "rinetd_run", "handle": 3, "packets": 0, "bytes": 0}}, '
        '{"counter": {"family": "inet", "name": "rule_x", "table": "rinetd_run", '
        '"packets": 1, "bytes": 1}}, {"counter": {"family": "inet", "name": "rule_2", '
        '"table": "other", "packets": 5, "bytes": 5}}]}'
    )
    assert read_counters(listing) == {1: (12, 960), 7: (0, 0)}
    assert read_counters("not json") == {} == read_counters('{"nftables": 3}')
