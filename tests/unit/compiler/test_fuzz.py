"""Property tests: no input makes the compiler crash, and fmt inverts compile."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rinetd_run.document import read
from rinetd_run.options import GLOBAL_OPTIONS, OPTIONS, RULE_OPTIONS
from rinetdc.check import check
from rinetdc.emit import seal
from rinetdc.fmt import format_ruleset
from rinetdc.render import render_json, render_text
from rinetdc.resolve import NoResolver

WORDS = [
    "0", "0.0.0.0", "::", "::1", "127.0.0.1", "10.0.0.300", "fe80::1", "host.example", "a..b",
    "80", "80/udp", "80/tcp", "http", "www/udp", "99999", "0x50", "[", "]", ",", "=",
    "[timeout=5]", "[src=10.0.0.1]", "timeout", "src", "allow", "deny", "ALLOW", "logfile",
    "pidlogfile", "logcommon", "10.*", "1?.2.*", "::ffff:*", '"/tmp/x y"', "/var/log/r.log",
    "#", "# c", "\t", " ", "é", "\r", "[::1]", "1.2.3.0/24",
    # the edges: invisible characters, huge and zero-padded numbers, empty options
    "\x0c", "\xa0", "\ufeff", "\x1b[31m", "\u200b", "9" * 5000, "0" * 300 + "80",
    "[timeout=" + "9" * 4400 + "]", "[]", "[,]", "[timeout=5,]", "0::1", "0.pool.ntp.org",
    "GW-DENY", "allow#c",
    # the extended language
    "include", "pidfile", "logjson", "metrics", "keepalive", "connect-timeout", "on", "off",
    "[keepalive=off]", "[proxy-protocol=v9]", "[max-connections=99999999]", "dns-refresh",
    "[idle-timeout=" + "9" * 300 + "]", "max-udp-connections", "[keepalive=on,src=::1]",
]  # fmt: skip

line = st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join)
configs = st.lists(line, max_size=12).map("\n".join)


def _exercise(text: str) -> None:
    result = check(text, NoResolver())
    shown = render_text(result.sources, result.diagnostics)
    # No control character reaches a terminal raw (tabs and newlines are layout).
    assert not any(c in shown for c in "\x00\x0b\x0c\x0d\x1b\x7f\ufeff")
    render_json(result.sources, result.diagnostics)
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


_LONG = "0 80/udp 127.0.0.1 80/udp [" + ",".join(["timeout=1"] * 2000) + "]"


@settings(max_examples=50, deadline=None)
@given(st.integers(0, len(_LONG)), st.text(max_size=3))
def test_long_lines_never_crash(at: int, insert: str) -> None:
    _exercise(_LONG[:at] + insert + _LONG[at:])


SEED = "allow 10.*\n0 80 127.0.0.1 8080 [timeout=3]\ndeny 10.0.0.1\nlogfile /tmp/x\n"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(SEED)), st.integers(0, 4), st.text(max_size=4))
def test_mutated_configs_never_crash(at: int, cut: int, insert: str) -> None:
    _exercise(SEED[:at] + insert + SEED[at + cut :])


# Valid configurations built from the grammar's parts, so the round trip runs on
# real input every time: distinct ports keep binds apart, src is IPv4 like the
# connect addresses, patterns use the pattern alphabet.
_BIND_HOSTS = ["0", "0.0.0.0", "127.0.0.1", "::", "::1", "10.1.2.3", "gw.example", "fe80::1"]
_CONNECT_HOSTS = ["127.0.0.1", "10.0.0.2", "backend.example", "localhost", "0"]
_SERVICES = {"tcp": ["http", "ssh", "telnet", "www"], "udp": ["domain", "ntp", "syslog"]}


@st.composite
def _port(draw: st.DrawFn, number: int | None = None) -> str:
    protocol = draw(st.sampled_from(["tcp", "udp"]))
    if number is None:  # a connect port: a number or, as 0 here, a service name
        number = draw(st.integers(0, 65535))
    text = str(number) if number else draw(st.sampled_from(_SERVICES[protocol]))
    suffix = draw(st.sampled_from(["", f"/{protocol}"] if protocol == "tcp" else ["/udp"]))
    return text + suffix


_pattern = st.text("0123456789abcdef.:*?", min_size=1, max_size=12)
_access = st.tuples(st.sampled_from(["allow", "deny"]), _pattern).map(" ".join)
# Each extended option's values, from the option table; a rule writes `name=value`, a
# global statement `name value`.
_VALUES = {
    option.name: st.sampled_from(option.words)
    if option.words
    else st.integers(option.low, option.high)
    for option in OPTIONS
}


def _written(name: str, between: str) -> st.SearchStrategy[str]:
    return _VALUES[name].map(lambda value: f"{name}{between}{value}")


_option = st.one_of(
    st.integers(0, 2**31 - 1).map(lambda n: f"timeout={n}"),
    st.sampled_from(["10.9.9.9", "127.0.0.2", "src.example"]).map(lambda a: f"src={a}"),
    *(_written(name, "=") for name in RULE_OPTIONS),
)
_global = st.one_of(
    *(_written(name, " ") for name in GLOBAL_OPTIONS),
    st.just("metrics 127.0.0.9 65535"),
)
_filler = st.sampled_from(["", "# a comment", "   ", "\t# indented comment"])
_path = st.sampled_from(["/var/log/rinetd.log", "/tmp/x", "relative.log", '"/tmp/quoted name"'])


@st.composite
def _rule(draw: st.DrawFn, port: int) -> list[str]:
    bind = f"{draw(st.sampled_from(_BIND_HOSTS))} {draw(_port(port))}"
    connect = f"{draw(st.sampled_from(_CONNECT_HOSTS))} {draw(_port())}"
    options = draw(st.lists(_option, max_size=4, unique_by=lambda o: o.split("=")[0]))
    if "udp" in bind + connect:  # the PROXY header is for tcp->tcp rules only (E020)
        options = [o for o in options if not o.startswith("proxy-protocol=")]
    group = f" [{', '.join(options)}]" if options else ""
    return [f"{bind} {connect}{group}", *draw(st.lists(_access, max_size=3))]


@st.composite
def valid_configs(draw: st.DrawFn) -> str:
    lines = draw(st.lists(_access, max_size=3))
    ports = draw(st.lists(st.integers(1, 65534), min_size=1, max_size=8, unique=True))
    for port in ports:
        lines += draw(_rule(port))
        lines += draw(st.lists(_filler, max_size=2))
    settings = [
        *draw(st.lists(_path.map("logfile {}".format), max_size=2)),
        *draw(st.lists(_path.map("pidlogfile {}".format), max_size=1)),
        *draw(st.lists(_path.map("pidfile {}".format), max_size=1)),
        *draw(st.lists(st.sampled_from(["logcommon", "logjson"]), max_size=1)),
        *draw(st.lists(_global, max_size=3)),
    ]
    lines += draw(st.permutations(settings))
    return "".join(line + "\n" for line in lines)


@settings(max_examples=200, deadline=None)
@given(valid_configs())
def test_fmt_inverts_compile(text: str) -> None:
    result = check(text, NoResolver())
    assert result.errors == 0, [d.message for d in result.diagnostics]
    compiled = seal(result.ruleset)
    written = format_ruleset(read(compiled))
    again = check(written, NoResolver())
    assert again.errors == 0
    assert seal(again.ruleset) == compiled
    assert format_ruleset(again.ruleset) == written  # fmt's output is a fixed point
