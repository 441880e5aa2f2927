"""dns-refresh's decisions without a resolver, a loop or a sleep."""

from __future__ import annotations

from rinetd_run.name_table import FAILURES_BEFORE_LOOKUP, NameTable, is_name
from rinetd_run.ruleset import Endpoint, GlobalOption, Log, Rule, RuleSet


def _rule(line: int, host: str, address: str, refresh: int | None = None) -> Rule:
    return Rule(
        line=line,
        bind=Endpoint("0", "0.0.0.0", 8000 + line, None, "tcp"),
        connect=Endpoint(host, address, 80, None, "tcp"),
        timeout=72,
        src=None,
        access=(),
        options=(("dns-refresh", refresh),) if refresh is not None else (),
    )


def _ruleset(*rules: Rule, refresh: int = 0) -> RuleSet:
    return RuleSet(
        resolved=True,
        access=(),
        log=Log(None, "tab", None),
        pidfile=None,
        rules=rules,
        settings=(GlobalOption("dns-refresh", refresh, 1),) if refresh else (),
    )


def test_names_are_keyed_by_their_period_and_numeric_hosts_are_not_names() -> None:
    table = NameTable()
    keys = table.plan(
        _ruleset(
            _rule(1, "web.example", "10.0.0.1"),
            _rule(2, "web.example", "10.0.0.1", refresh=30),
            _rule(3, "10.0.0.9", "10.0.0.9"),
            _rule(4, "0", "0.0.0.0"),
        )
    )
    assert keys == [("web.example", 0), ("web.example", 30)]
    assert table.of("web.example", 30, "10.0.0.1") == ("10.0.0.1",)
    assert table.of("other.example", 0, "10.0.0.7") == ("10.0.0.7",)  # not planned: its own
    assert not is_name("::1") and not is_name("0") and is_name("a.example")


def test_one_lookup_at_a_time_and_good_addresses_are_taken_in_order() -> None:
    table = NameTable()
    (key,) = table.plan(_ruleset(_rule(1, "web.example", "10.0.0.1"), refresh=60))
    assert table.start(key) and not table.start(key)
    assert table.settled(key, ("10.0.0.2", "10.0.0.3"), None) is None
    assert table.of(*key, "10.0.0.1") == ("10.0.0.2", "10.0.0.3")
    assert table.start(key)


def test_a_failing_name_keeps_its_addresses_and_is_said_once_then_once_again() -> None:
    table = NameTable()
    (key,) = table.plan(_ruleset(_rule(1, "web.example", "10.0.0.1"), refresh=60))
    said = []
    for _ in range(3):
        table.start(key)
        said.append(table.settled(key, (), "Name or service not known"))
    assert said[0] == (
        "cannot resolve web.example: Name or service not known; "
        "new connections keep going to 10.0.0.1"
    )
    assert said[1:] == [None, None]
    assert table.of(*key, "10.0.0.1") == ("10.0.0.1",)
    table.start(key)
    assert table.settled(key, (), None) is None  # no address: still failing, said already
    table.start(key)
    assert table.settled(key, ("10.0.0.5",), None) == "web.example resolves again: 10.0.0.5"
    table.start(key)
    assert table.settled(key, ("10.0.0.5",), None) is None


def test_failed_connects_in_a_row_ask_for_a_lookup_with_dns_refresh_only() -> None:
    table = NameTable()
    keys = table.plan(
        _ruleset(
            _rule(1, "web.example", "10.0.0.1", refresh=0),
            _rule(2, "db.example", "10.0.0.2", refresh=3600),
        )
    )
    assert keys == [("web.example", 0), ("db.example", 3600)]
    asks = [table.failed("db.example", 3600) for _ in range(FAILURES_BEFORE_LOOKUP)]
    assert asks == [False] * (FAILURES_BEFORE_LOOKUP - 1) + [True]
    table.failed("db.example", 3600)
    table.connected("db.example", 3600)  # a success resets the count
    assert not any(table.failed("db.example", 3600) for _ in range(FAILURES_BEFORE_LOOKUP - 1))
    assert not any(table.failed("web.example", 0) for _ in range(10))  # no dns-refresh


def test_a_name_that_left_the_rule_set_is_not_updated_by_its_late_answer() -> None:
    table = NameTable()
    (key,) = table.plan(_ruleset(_rule(1, "web.example", "10.0.0.1"), refresh=60))
    table.start(key)
    table.plan(_ruleset(_rule(1, "db.example", "10.0.0.2"), refresh=60))
    assert table.settled(key, ("10.9.9.9",), None) is None
    assert key not in table.addresses


def test_a_new_plan_may_look_up_at_once_a_name_whose_lookup_was_under_way() -> None:
    """The driver cancels the lookups under way when a reload plans anew; the name must not
    stay busy, or it would never be looked up again."""
    table = NameTable()
    ruleset = _ruleset(_rule(1, "web.example", "10.0.0.1"), refresh=60)
    (key,) = table.plan(ruleset)
    assert table.start(key)
    table.plan(ruleset)
    assert table.start(key)
