"""Property tests: no input makes the compiler crash, and fmt inverts compile."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rinetd_run.document import read
from rinetdc.check import check
from rinetdc.emit import render
from rinetdc.fmt import format_ruleset
from rinetdc.render import render_json, render_text
from rinetdc.resolve import NoResolver

WORDS = [
    "0", "0.0.0.0", "::", "::1", "127.0.0.1", "10.0.0.300", "fe80::1", "host.example", "a..b",
    "80", "80/udp", "80/tcp", "http", "www/udp", "99999", "0x50", "[", "]", ",", "=",
    "[timeout=5]", "[src=10.0.0.1]", "timeout", "src", "allow", "deny", "ALLOW", "logfile",
    "pidlogfile", "logcommon", "10.*", "1?.2.*", "::ffff:*", '"/tmp/x y"', "/var/log/r.log",
    "#", "# c", "\t", " ", "é", "\r", "[::1]", "1.2.3.0/24",
]  # fmt: skip

line = st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join)
configs = st.lists(line, max_size=12).map("\n".join)


def _exercise(text: str) -> None:
    result = check(text, NoResolver())
    render_text("f", result.config.lines, result.diagnostics)
    render_json("f", result.diagnostics)
    for d in result.diagnostics:
        assert 1 <= d.span.line <= max(len(result.config.lines), 1)
        assert 1 <= d.span.column <= d.span.end_column


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_word_salad_never_crashes(text: str) -> None:
    _exercise(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes(text: str) -> None:
    _exercise(text)


SEED = "allow 10.*\n0 80 127.0.0.1 8080 [timeout=3]\ndeny 10.0.0.1\nlogfile /tmp/x\n"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(SEED)), st.integers(0, 4), st.text(max_size=4))
def test_mutated_configs_never_crash(at: int, cut: int, insert: str) -> None:
    _exercise(SEED[:at] + insert + SEED[at + cut :])


@settings(max_examples=200, deadline=None)
@given(configs)
def test_fmt_inverts_compile_for_every_accepted_config(text: str) -> None:
    result = check(text, NoResolver())
    if result.errors:
        return
    compiled = render(result.ruleset)
    again = check(format_ruleset(read(compiled)), NoResolver())
    assert again.errors == 0
    assert render(again.ruleset) == compiled
