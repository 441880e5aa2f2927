"""Statements, positions and syntax diagnostics of the parser."""

from __future__ import annotations

import pytest

from rinetdc import ast
from rinetdc.diagnostics import Span
from rinetdc.parser import parse


def _one(text: str) -> ast.Statement:
    config, found = parse(text)
    assert found == []
    (statement,) = config.statements
    return statement


def _codes(text: str) -> list[tuple[str, int, int, str | None]]:
    _config, found = parse(text)
    return [(d.code, d.span.column, d.span.end_column, d.hint) for d in found]


def test_rule_with_every_part_and_positions() -> None:
    rule = _one("::1 80/udp fe80::1 www/tcp [timeout = 5 , src=fd00::2]  # c\n")
    assert isinstance(rule, ast.RuleLine)
    assert rule.bind_address == ast.Address("::1", ast.AddressKind.IPV6, Span(1, 1, 4))
    assert rule.bind_port == ast.Port("80", "udp", Span(1, 5, 7))
    assert rule.connect_address.kind is ast.AddressKind.IPV6
    assert rule.connect_port == ast.Port("www", "tcp", Span(1, 20, 23))
    assert [(o.name, o.value) for o in rule.options] == [("timeout", "5"), ("src", "fd00::2")]
    assert rule.options[0].span == Span(1, 29, 40)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("0", ast.AddressKind.ZERO),
        ("0.0.0.0", ast.AddressKind.IPV4),
        ("::", ast.AddressKind.IPV6),
        ("host-1.example.com", ast.AddressKind.HOSTNAME),
        ("1.2.3.4.example", ast.AddressKind.HOSTNAME),
        ("a_b", ast.AddressKind.HOSTNAME),
    ],
)
def test_address_forms(text: str, kind: ast.AddressKind) -> None:
    rule = _one(f"{text} 80 127.0.0.1 80\n")
    assert isinstance(rule, ast.RuleLine)
    assert rule.bind_address.kind is kind


def test_no_protocol_means_tcp_and_options_may_be_glued() -> None:
    rule = _one("0 80 127.0.0.1 80[timeout=5]\n")
    assert isinstance(rule, ast.RuleLine)
    assert rule.bind_port.protocol == rule.connect_port.protocol == "tcp"
    assert rule.options[0].value == "5"


def test_tabs_indentation_crlf_and_comments() -> None:
    config, found = parse("\t 0\t80 \t127.0.0.1\t80\t# x\r\n#c\r\n   \r\n\r\n")
    assert found == []
    assert len(config.statements) == 1
    assert config.lines[0].endswith("# x")


@pytest.mark.parametrize(
    ("text", "node", "value"),
    [
        ("logfile /var/log/r.log\n", ast.LogFile, "/var/log/r.log"),
        ("logfile /var/log/r#x\n", ast.LogFile, "/var/log/r#x"),
        ('pidlogfile "/run/a b.pid"\n', ast.PidLogFile, '"/run/a b.pid"'),
        ("allow 10.?.*.[1]\n", ast.Access, "10.?.*.[1]"),
        ("deny ::ffff:10.*\n", ast.Access, "::ffff:10.*"),
    ],
)
def test_settings_and_access(text: str, node: type, value: str) -> None:
    config, _found = parse(text)
    (statement,) = config.statements
    assert isinstance(statement, node)
    assert value in (getattr(statement, "path", None), getattr(statement, "pattern", None))


@pytest.mark.parametrize("kind", ["allow", "deny"])
def test_access_lines_keep_their_kind(kind: str) -> None:
    statement = _one(f"{kind} 10.0.0.*\n")
    assert isinstance(statement, ast.Access)
    assert (statement.kind, statement.pattern, statement.span) == (
        kind,
        "10.0.0.*",
        Span(1, len(kind) + 2, len(kind) + 10),
    )


def test_logcommon() -> None:
    assert isinstance(_one("logcommon  # c\n"), ast.LogCommon)


def test_every_bad_line_is_reported_and_good_lines_still_parse() -> None:
    config, found = parse("bad line\n0 80 127.0.0.1 80\nallow nope!\n")
    assert [d.span.line for d in found] == [1, 3]
    # `bad line` may have been meant as a rule: it opens a rule's scope (see the validator)
    assert [type(s) for s in config.statements] == [ast.BrokenRule, ast.RuleLine]
    assert config.broken == (1, 3)


def test_last_line_without_newline_is_parsed_and_warned() -> None:
    config, found = parse("0 80 127.0.0.1 80\nlogcommon")
    assert len(config.statements) == 2
    assert [(d.code, d.span) for d in found] == [("W105", Span(2, 10, 11))]


@pytest.mark.parametrize(
    ("text", "code", "columns", "hint"),
    [
        ("ALLOW 10.0.0.1\n", "E001", (1, 6), "keywords are lowercase: write 'allow'"),
        ("0 80/UDP 1.1.1.1 80\n", "E001", (3, 9), "keywords are lowercase: write '/udp'"),
        ("allow 10.0.0.x\n", "E008", (7, 15), "patterns use digits"),
        ("allow 1.2.3.0/24\n", "E008", (7, 17), "no CIDR in rinetd patterns"),
        ("deny example.com\n", "E008", (6, 17), "patterns use digits"),
        ("0 80 [::1] 80\n", "E001", (6, 11), "without brackets"),
        ("0 80 ::ffff:1.2.3.4 80\n", "E001", (6, 20), "IPv4-mapped"),
        ("0 80 fe80::1%eth0 80\n", "E001", (6, 18), "scoped"),
        ("0 80 host.example. 80\n", "E001", (6, 19), "trailing dot"),
        ("0 80 1.1.1.1 80 [tiemout=5]\n", "E009", (18, 25), "did you mean 'timeout'?"),
        ("0 80 1.1.1.1 80 [timeout=1] [src=0]\n", "E001", (29, 36), "one [ ] group"),
        ("logfle /var/log/x\n", "E001", (8, 18), "did you mean 'logfile'?"),
        ("0 80 1.1.1.1 80/tcpx\n", "E001", (14, 21), "glued to the port"),
    ],
)
def test_syntax_errors_point_at_the_word_with_a_hint(
    text: str, code: str, columns: tuple[int, int], hint: str | None
) -> None:
    ((found_code, start, end, found_hint),) = _codes(text)
    assert (found_code, (start, end)) == (code, columns)
    if hint is None:
        assert found_hint is None
    else:
        assert found_hint is not None and hint in found_hint


def test_syntax_error_message_says_what_was_expected() -> None:
    _config, (diagnostic,) = parse("0 80 127.0.0.1\n")
    assert diagnostic.message == (
        "expected a port number or service name, found the end of the line"
    )


@pytest.mark.parametrize(
    "text",
    ["allowed.example.com 80 127.0.0.1 80\n", "logcommon.example 80 127.0.0.1 80\n"],
)
def test_keywords_do_not_swallow_host_names(text: str) -> None:
    assert isinstance(_one(text), ast.RuleLine)


def test_a_capitalised_host_name_is_not_taken_for_a_keyword() -> None:
    ((code, start, end, hint),) = _codes("GW-DENY 8080 10.0.0.1\n")
    assert (code, start, end) == ("E001", 22, 23)  # the missing port, at the end
    assert hint is None or "lowercase" not in hint


@pytest.mark.parametrize(
    ("text", "column", "found"),
    [
        ("0 80 1.1.1.1 80 []\n", 18, "]"),
        ("0 80 1.1.1.1 80 [,]\n", 18, ","),
        ("0 80 1.1.1.1 80 [timeout=5,]\n", 28, "]"),
    ],
)
def test_an_empty_option_is_named_as_such(text: str, column: int, found: str) -> None:
    _config, (diagnostic,) = parse(text)
    assert diagnostic.code == "E001"
    assert diagnostic.span == Span(1, column, column + 1)
    expected = f"expected an option (timeout=N, src=ADDRESS, ...), found '{found}'"
    assert diagnostic.message == expected


@pytest.mark.parametrize(
    ("text", "column", "name", "hint"),
    [
        ("0 80\x0c127.0.0.1 80\n", 5, "U+000C FORM FEED", "remove it"),
        ("0\xa080 127.0.0.1 80\n", 2, "U+00A0 NO-BREAK SPACE", "plain space"),
        ("\ufeff127.0.0.1 80 127.0.0.1 80\n", 1, "U+FEFF ZERO WIDTH NO-BREAK SPACE", "byte order"),
        ("0 80 127.0.0.1 80\r0 81 127.0.0.1 81\r", 18, "U+000D CARRIAGE RETURN", "CR line"),
    ],
)
def test_invisible_characters_are_named_and_pointed_at(
    text: str, column: int, name: str, hint: str
) -> None:
    found = parse(text)[1]
    diagnostic = next(d for d in found if d.code == "E001")
    assert diagnostic.message == f"invisible character {name}"
    assert diagnostic.span == Span(1, column, column + 1)
    assert diagnostic.hint is not None and hint in diagnostic.hint


def test_crlf_line_endings_are_not_invisible_characters() -> None:
    assert parse("0 80 127.0.0.1 80\r\nallow 10.*\r\n")[1] == []


@pytest.mark.parametrize("last", ["# only a comment", "   ", "\t# x"])
def test_a_last_line_of_blanks_or_comment_without_newline_is_not_warned(last: str) -> None:
    assert parse("0 80 127.0.0.1 80\n" + last)[1] == []


def test_a_comment_where_a_pattern_should_be() -> None:
    ((code, start, end, _hint),) = _codes("allow#c\n")
    assert (code, start, end) == ("E001", 6, 8)
    _config, (diagnostic,) = parse("allow#c\n")
    assert diagnostic.message == "expected an address pattern, found the comment '#c'"
