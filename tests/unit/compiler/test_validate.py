"""Meaning checks: resolution, services, ranges, binds, patterns, scopes."""

from __future__ import annotations

import pytest

from rinetdc.check import check
from rinetdc.resolve import NoResolver, SystemResolver


class TableResolver:
    """A resolver with a fixed table, so tests never depend on the network's DNS."""

    enabled = True

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def resolve(self, host: str) -> str | None:
        return self.table.get(host)


def _codes(text: str, resolver: object = None) -> list[str]:
    result = check(text, resolver or NoResolver())  # type: ignore[arg-type]
    return [d.code for d in result.diagnostics]


def test_host_names_resolve_or_fail_with_e004() -> None:
    table = TableResolver({"backend.example": "10.0.0.7"})
    result = check("0 80 backend.example 80\n0 81 nowhere.example 80\n", table)
    assert [(d.code, d.span.line, d.span.column) for d in result.diagnostics] == [("E004", 2, 6)]
    (rule,) = result.ruleset.rules
    assert (rule.connect.host, rule.connect.address) == ("backend.example", "10.0.0.7")


def test_localhost_resolves_with_the_system_resolver() -> None:
    result = check("127.0.0.1 8080 localhost 80\n", SystemResolver())
    assert result.errors == 0
    assert result.ruleset.rules[0].connect.address in ("127.0.0.1", "::1")


def test_no_resolve_checks_only_the_syntax_of_names() -> None:
    result = check("0 80 nowhere.example 80\n", NoResolver())
    assert result.errors == 0
    assert result.ruleset.rules[0].connect.address is None
    assert _codes(f"0 80 {'a' * 64}.example 80\n") == ["E003"]


def test_services_are_looked_up_per_protocol() -> None:
    result = check("0 www 127.0.0.1 8080\n0 53/udp 127.0.0.1 domain/udp\n", NoResolver())
    assert [(r.bind.port, r.bind.service) for r in result.ruleset.rules] == [
        (80, "www"),
        (53, None),
    ]
    assert result.ruleset.rules[1].connect.port == 53
    bad = check("0 80/udp 127.0.0.1 ssh/udp\n", NoResolver())
    (diagnostic,) = bad.diagnostics
    assert diagnostic.code == "E005"
    assert diagnostic.hint == "'ssh' is a tcp service: add /tcp or use its number"


def test_port_range() -> None:
    assert _codes("0 1 127.0.0.1 65535\n") == []
    assert _codes("0 0 127.0.0.1 65536\n") == ["E006", "E006"]
    assert _codes("0 99999 127.0.0.1 80\n") == ["E006"]


def test_timeout_default_zero_and_range() -> None:
    rules = check(
        "0 1/udp 127.0.0.1 1/udp\n0 2/udp 127.0.0.1 2/udp [timeout=0]\n"
        "0 3/udp 127.0.0.1 3/udp [timeout=5]\n",
        NoResolver(),
    ).ruleset.rules
    assert [r.timeout for r in rules] == [72, 72, 5]
    assert _codes("0 1/udp 127.0.0.1 1/udp [timeout=2147483648]\n") == ["E007"]


def test_src_option_is_resolved_and_family_checked() -> None:
    result = check("0 80 10.0.0.1 80 [src=10.0.0.2]\n", NoResolver())
    rule = result.ruleset.rules[0]
    assert (rule.src.host, rule.src.address) == ("10.0.0.2", "10.0.0.2")
    assert _codes("0 80 10.0.0.1 80 [src=::1]\n") == ["E012"]
    assert _codes("0 80 ::1 80 [src=10.0.0.2]\n") == ["E012"]


def test_binds_that_collide_point_at_both_lines() -> None:
    result = check("0 80 127.0.0.1 1\n127.0.0.2 80 127.0.0.1 1\n", NoResolver())
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "E011"
    assert (diagnostic.span.line, diagnostic.related[0].span.line) == (2, 1)


def test_binds_that_do_not_collide() -> None:
    text = (
        "127.0.0.1 80 127.0.0.1 1\n127.0.0.2 80 127.0.0.1 1\n"  # two addresses
        "0 81 127.0.0.1 1\n0 81/udp 127.0.0.1 1/udp\n"  # two protocols
        "0.0.0.0 82 127.0.0.1 1\n::1 82 ::1 1\n"  # v4 wildcard and a v6 address
    )
    assert _codes(text) == []


def test_hostname_binds_collide_through_their_resolved_address() -> None:
    table = TableResolver({"gw.example": "127.0.0.1"})
    assert _codes("127.0.0.1 80 127.0.0.1 1\ngw.example 80 127.0.0.1 1\n", table) == ["E010"]
    assert _codes("gw.example 80 127.0.0.1 1\ngw.example 80 127.0.0.1 1\n") == ["E010"]


def test_access_scope_global_then_per_rule() -> None:
    ruleset = check(
        "allow 10.*\n# comment\n0 80 127.0.0.1 80\nlogfile /tmp/x\ndeny 10.0.0.1\n"
        "0 81 127.0.0.1 81\nallow 10.1.*\n",
        NoResolver(),
    ).ruleset
    assert [(a.kind, a.pattern, a.line) for a in ruleset.access] == [("allow", "10.*", 1)]
    assert [[(a.kind, a.line) for a in r.access] for r in ruleset.rules] == [
        [("deny", 5)],
        [("allow", 7)],
    ]


def test_patterns_that_can_never_match() -> None:
    assert _codes("0 80 127.0.0.1 80\nallow 10.0.0.A\n") == ["W101"]
    assert _codes(":: 80 ::1 80\nallow 10.0.0.*\n") == ["W101"]
    assert _codes(":: 80 ::1 80\nallow ::ffff:10.0.0.*\n") == []
    assert _codes(":: 80 ::1 80\nallow *10.0.0.*\n") == []
    assert _codes("127.0.0.1 80 ::1 80\nallow fe80::*\n") == ["W101"]


def test_a_rule_the_global_rules_already_reject() -> None:
    assert _codes("deny *\n0 80 127.0.0.1 80\n") == ["W102"]
    assert _codes("allow 10.*\n0 80 127.0.0.1 80\nallow 192.168.0.1\n") == ["W102"]
    assert _codes("allow 10.*\n0 80 127.0.0.1 80\nallow 10.0.0.1\n") == []
    assert _codes("deny 10.0.0.1\n0 80 127.0.0.1 80\nallow 10.0.0.1\n") == ["W102"]


def test_settings_last_wins() -> None:
    ruleset = check(
        "logfile /a\nlogfile /b\npidlogfile /p\n0 80 127.0.0.1 80\nlogcommon\n", NoResolver()
    ).ruleset
    assert ruleset.log.file is not None and ruleset.log.file.path == "/b"
    assert ruleset.pidfile is not None and ruleset.pidfile.line == 3
    assert (ruleset.log.format, ruleset.log.format_line) == ("common", 5)


def test_empty_config_warns_once() -> None:
    assert _codes("") == ["W106"]
    assert _codes("# only a comment\n") == ["W106"]
    assert _codes("0 80 127.0.0.1\n") == ["E001"]  # a broken rule is not "no rules"


def test_any_digit_string_gives_a_value_or_a_located_error() -> None:
    huge = "9" * 5000
    assert _codes(f"0 {huge} 127.0.0.1 80\n") == ["E006"]
    assert _codes(f"0 80/udp 127.0.0.1 80/udp [timeout={huge}]\n") == ["E007"]
    (rule,) = check("0 " + "0" * 5000 + "80 127.0.0.1 80\n", NoResolver()).ruleset.rules
    assert rule.bind.port == 80
    (diagnostic,) = check(f"0 {huge} 127.0.0.1 80\n", NoResolver()).diagnostics
    assert len(diagnostic.message) < 80  # the number is quoted cut, with its length


def test_udp_wildcard_and_specific_address_share_a_port() -> None:
    assert _codes("0 5000/udp 127.0.0.1 1/udp\n127.0.0.1 5000/udp 127.0.0.1 2/udp\n") == []
    assert _codes(":: 5000/udp 127.0.0.1 1/udp\n::1 5000/udp 127.0.0.1 2/udp\n") == []
    assert _codes("0 5000/udp 127.0.0.1 1/udp\n:: 5000/udp 127.0.0.1 2/udp\n") == ["E011"]
    assert _codes("0 5000/udp 127.0.0.1 1/udp\n0 5000/udp 127.0.0.1 2/udp\n") == ["E010"]
    assert _codes("0 5000 127.0.0.1 1\n127.0.0.1 5000 127.0.0.1 2\n") == ["E011"]


def test_a_collision_names_the_first_bind_it_meets() -> None:
    text = "10.0.0.1 80 1.1.1.1 1\n10.0.0.2 80 1.1.1.1 1\n:: 80 1.1.1.1 1\n10.0.0.2 80 1.1.1.1 1\n"
    found = check(text, NoResolver()).diagnostics
    assert [(d.code, d.span.line, d.related[0].span.line) for d in found] == [
        ("E011", 3, 1),  # `::` overlaps every earlier address; the first is named
        ("E010", 4, 2),  # a duplicate is a duplicate, though `::` is earlier too
    ]


def test_a_broken_rule_line_keeps_its_scope_and_its_bind() -> None:
    assert _codes("0 80 1.2.3.4\ndeny *\n") == ["E001"]  # deny * is the broken rule's
    found = check("0 80 1.2.3.4\n0 80 1.2.3.5 81\n", NoResolver()).diagnostics
    assert [(d.code, d.span.line) for d in found] == [("E001", 1), ("E010", 2)]
    assert _codes("0 99999 1.2.3.4\n") == ["E006", "E001"]  # every problem in one run
    assert _codes("garbage here\n") == ["E001"]  # not surely a rule: no service lookup


@pytest.mark.parametrize(
    ("address", "taken"),
    [
        ("0::1", "0"),
        ("0:0:0:0:0:0:0:1", "0"),
        ("0a::1", "0"),
        ("0.pool.ntp.org", "0"),
        ("192.168.1.10.sslip.io", "192.168.1.10"),
    ],
)
def test_addresses_rinetd_073_misreads_are_warned(address: str, taken: str) -> None:
    result = check(f"127.0.0.1 80 {address} 80\n", NoResolver())
    (diagnostic,) = result.diagnostics
    assert (diagnostic.code, diagnostic.span.column) == ("W110", 14)
    assert f"as the address {taken} followed by" in diagnostic.message
    connect = "::1" if ":" in address else "10.0.0.1"
    assert _codes(f"127.0.0.1 80 {connect} 80 [src={address}]\n") == ["W110"]


@pytest.mark.parametrize("address", ["0", "0.0.0.0", "10.0.0.1", "::1", "host0.example"])
def test_addresses_rinetd_073_reads_whole_are_not_warned(address: str) -> None:
    assert "W110" not in _codes(f"127.0.0.1 80 {address} 80\n")


def test_patterns_that_match_no_address_at_all() -> None:
    assert _codes("allow [\n0 80 127.0.0.1 80\n") == ["W101"]
    assert _codes("0 80 127.0.0.1 80\nallow ?\n") == ["W101"]
    assert _codes("0 80 127.0.0.1 80\nallow 1?\n") == ["W101"]
    assert _codes("0 80 127.0.0.1 80\nallow *\n") == []


def test_pool_checks_say_where_and_what_to_do() -> None:
    result = check("pool web 10.0.0.1 80\n0 80 @wbe\n", NoResolver())
    (unknown,) = [d for d in result.diagnostics if d.code == "E024"]
    assert (unknown.span.line, unknown.span.column, unknown.hint) == (2, 6, "did you mean @web?")
    # A member's service must have a port for every protocol its rules reach it by.
    text = "pool mail 10.0.0.1 smtp\n0 25 @mail\n0 26/udp @mail\n"
    (wrong,) = [d for d in check(text, NoResolver()).diagnostics if d.code == "E027"]
    assert "has no port for udp" in wrong.message and wrong.span.column == 20
    assert [d.code for d in check(text.replace("smtp", "domain"), NoResolver()).diagnostics] == []
    # A pool rule's own options, and the rule set: members, options and protocol.
    text = "pool dns 10.0.0.53 53 [weight=4]\n0 53/udp @dns [balance=random]\n0 54 @dns/udp\n"
    result = check(text, NoResolver())
    assert result.errors == 0
    (pool,) = result.ruleset.pools
    assert [(m.host, m.port, m.weight) for m in pool.members] == [("10.0.0.53", 53, 4)]
    assert [(r.pool, r.connect.protocol) for r in result.ruleset.rules] == [
        ("dns", "udp"),
        ("dns", "udp"),
    ]
