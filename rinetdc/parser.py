"""Text -> typed AST.  The only module that touches Lark.

The whole file is parsed at once with the ``config`` start rule of
``grammar.lark``; only when that fails is each physical line parsed on its
own with the ``line`` start rule, so one bad line never hides the next: every
syntax error of a file is reported in one run.  Meaning (quoted file names,
ranges, scopes) is the validator's.  ``_syntax_error`` is the single funnel that
turns Lark's exceptions into diagnostics; no Lark type leaves this module.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import replace
from functools import cache
from importlib import resources

import lark

from rinetd_run.options import GLOBAL_OPTIONS, MEMBER_OPTIONS, RULE_OPTIONS

from . import ast
from .diagnostics import Diagnostic, Place, Span, make, one_file, span_at

__all__ = [
    "KEYWORDS",
    "MAX_SYNTAX_ERRORS",
    "OPTIONS",
    "include_name",
    "invisible_character",
    "missing_newline",
    "parse",
]

KEYWORDS = (
    "allow",
    "deny",
    "logfile",
    "pidlogfile",
    "logcommon",
    "logjson",
    "include",
    "pidfile",
    "metrics",
    "pool",
    *GLOBAL_OPTIONS,
)
OPTIONS = ("timeout", "src", *RULE_OPTIONS, *(o for o in MEMBER_OPTIONS if o not in RULE_OPTIONS))
_LOWERCASE_WORDS = (*KEYWORDS, *OPTIONS, "/tcp", "/udp")
_WORD = re.compile(r"[^ \t\r\n]+")
MAX_SYNTAX_ERRORS = 100  # then reading stops, as a C compiler's error limit does

# What the grammar's terminals mean to an operator, for "expected ..." lists.
_TERMINAL_NAMES = {
    "ADDRESS": "an address or host name",
    "PORT": "a port number or service name",
    "PATTERN": "an address pattern",
    "FILENAME": "a file name",
    "NUMBER": "a number",
    "TIMEOUT": "timeout",
    "SRC": "src",
    "RULE_OPTION": "an option",
    "SETTING": "a setting",
    "VALUE": "a value",
    "LOGJSON": "logjson",
    "PIDFILE": "pidfile",
    "INCLUDE": "include",
    "METRICS": "metrics",
    "POOL": "pool",
    "POOL_NAME": "a pool name",
    "POOL_REF": "@ and a pool name",
    "FLAG": "an option",
    "ALLOW": "allow",
    "DENY": "deny",
    "LOGFILE": "logfile",
    "PIDLOGFILE": "pidlogfile",
    "LOGCOMMON": "logcommon",
    "LSQB": "[",
    "RSQB": "]",
    "COMMA": ",",
    "EQUAL": "=",
    "_EOL": "the end of the line",
}


@cache
def _parser() -> lark.Lark:
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text("utf-8")
    return lark.Lark(grammar, parser="lalr", start=["config", "line"], maybe_placeholders=False)


def parse(text: str, place: Place = one_file) -> tuple[ast.Config, list[Diagnostic]]:
    """Parse a whole configuration; return its statements and the syntax diagnostics."""
    physical = text.split("\n")
    diagnostics: list[Diagnostic] = []
    body = text
    if physical[-1] == "":
        physical.pop()
    else:
        body = text + "\n"
        diagnostics += missing_newline(physical[-1], len(physical), place)
    lines = tuple(line.rstrip("\r") for line in physical)
    parser = _parser()
    trees: list[tuple[lark.Tree[lark.Token] | ast.BrokenRule, int]]
    try:
        trees = [(parser.parse(body, start="config"), 0)]
        broken: list[int] = []
    except lark.exceptions.UnexpectedInput:
        # Slow path, only for broken files: line by line, to report every bad line.
        trees, broken = [], []
        for offset, raw in enumerate(physical):
            try:
                trees.append((parser.parse(raw + "\n", start="line"), offset))
            except lark.exceptions.UnexpectedInput as error:
                broken.append(offset + 1)
                if len(broken) > MAX_SYNTAX_ERRORS:
                    diagnostics.append(_stopped(physical, offset, place))
                    break
                diagnostics.append(_syntax_error(error, raw, offset + 1, place))
                recovered = _recover_rule(raw, offset, place)
                if recovered is not None:
                    trees.append((recovered, offset))
    statements: list[ast.Statement] = []
    for tree, offset in trees:
        if isinstance(tree, ast.BrokenRule):
            statements.append(tree)
            continue
        for statement in tree.find_data("line"):
            for child in statement.children:
                if isinstance(child, lark.Tree):
                    statements.append(_statement(child, offset, place))
    config = ast.Config(statements=tuple(statements), lines=lines, broken=tuple(broken))
    return config, diagnostics


def _stopped(physical: list[str], offset: int, place: Place) -> Diagnostic:
    """The error that ends reading: garbage costs no more than a valid file to check."""
    rest = len(physical) - offset
    message = (
        f"more than {MAX_SYNTAX_ERRORS} syntax errors: rinetdc stopped reading here "
        f"({rest:,} line{'s' * (rest != 1)} not read)"
    )
    end = max(len(physical[offset].rstrip("\r")), 1) + 1
    hint = "is this a rinetd configuration? fix the errors above and check again"
    return make("E001", message, span_at(place, offset + 1, 1, end), hint=hint)


def include_name(raw: str) -> tuple[str, int, int] | None:
    """The file name of the include statement on the line ``raw`` as the grammar reads it,
    with its 1-based [start, end) columns; None when the line is no include statement
    (or is broken: the parse reports that line)."""
    try:
        tree = _parser().parse(raw.rstrip("\r") + "\n", start="line")
    except lark.exceptions.UnexpectedInput:
        return None
    node = next(iter(tree.find_data("include")), None)
    if node is None:
        return None
    name = _tokens(node)[1]
    assert name.column is not None
    return str(name), name.column, name.column + len(name)


def invisible_character(
    raw: str, start: int, end: int, line: int, place: Place = one_file
) -> Diagnostic | None:
    """E001 for the first character a terminal does not show, or shows as a blank that
    is no plain space, in columns [start, end) of ``raw``; or None."""
    index = _invisible(raw, end, start - 1)
    return None if index is None else _invisible_error(raw, index, line, place)


def missing_newline(last: str, line: int, place: Place = one_file) -> list[Diagnostic]:
    """W105 for a file whose last line, ``last`` (number ``line``), has no newline."""
    # A last line of blanks or a comment is ignored by 0.73 too, harmlessly.
    if not last.split("#")[0].strip(" \t\r"):
        return []
    end = len(last.rstrip("\r")) + 1
    return [
        make(
            "W105",
            "the last line has no newline: rinetd 0.73 ignores it",
            span_at(place, line, end, end + 1),
            hint="end the file with a newline",
        )
    ]


# -- tree -> AST --------------------------------------------------------------


def _span(token: lark.Token, offset: int, place: Place, length: int | None = None) -> Span:
    assert token.line is not None and token.column is not None
    end = token.column + (len(token) if length is None else length)
    return span_at(place, token.line + offset, token.column, end)


def _tokens(tree: lark.Tree[lark.Token]) -> list[lark.Token]:
    return [child for child in tree.children if isinstance(child, lark.Token)]


def _address(token: lark.Token, offset: int, place: Place) -> ast.Address:
    text = str(token)
    return ast.Address(text=text, kind=ast.address_kind(text), span=_span(token, offset, place))


def _port(token: lark.Token, offset: int, place: Place) -> ast.Port:
    text, _slash, protocol = str(token).partition("/")
    return ast.Port(
        text=text, protocol=protocol or "tcp", span=_span(token, offset, place, len(text))
    )


def _option(tree: lark.Tree[lark.Token], offset: int, place: Place) -> ast.Option:
    if tree.data == "flag":  # `backup`: the option with its first word, on
        (flag,) = _tokens(tree)
        span = _span(flag, offset, place)
        return ast.Option(name=str(flag), value="on", span=span, value_span=span)
    name, value = _tokens(tree)
    value_span = _span(value, offset, place)
    whole = replace(value_span, column=_span(name, offset, place).column)
    return ast.Option(name=str(name), value=str(value), span=whole, value_span=value_span)


def _statement(tree: lark.Tree[lark.Token], offset: int, place: Place) -> ast.Statement:
    kind = tree.data
    tokens = _tokens(tree)
    if kind in ("rule", "pool"):
        groups = [child for child in tree.children if isinstance(child, lark.Tree)]
        options = tuple(
            _option(o, offset, place)
            for group in groups
            for o in group.children
            if isinstance(o, lark.Tree)
        )
        last = options[-1].span if options else _span(tokens[-1], offset, place)
        if kind == "pool":
            name_span = _span(tokens[1], offset, place)
            port = _port(tokens[3], offset, place)
            whole_port = _span(tokens[3], offset, place)
            protocol = replace(whole_port, column=port.span.end_column)
            return ast.PoolLine(
                name=str(tokens[1]),
                name_span=name_span,
                address=_address(tokens[2], offset, place),
                port=port,
                options=options,
                span=replace(_span(tokens[0], offset, place), end_column=last.end_column),
                protocol_span=protocol if "/" in tokens[3] else None,
            )
        bind_address = _address(tokens[0], offset, place)
        span = replace(bind_address.span, end_column=last.end_column)
        bind_port = _port(tokens[1], offset, place)
        if tokens[2].type == "POOL_REF":
            pool_name, _slash, written = str(tokens[2])[1:].partition("/")
            pool = ast.PoolRef(pool_name, written or None, _span(tokens[2], offset, place))
            return ast.RuleLine(bind_address, bind_port, None, None, options, span, pool)
        return ast.RuleLine(
            bind_address=bind_address,
            bind_port=bind_port,
            connect_address=_address(tokens[2], offset, place),
            connect_port=_port(tokens[3], offset, place),
            options=options,
            span=span,
        )
    if kind == "access":
        keyword, pattern = tokens
        span = _span(pattern, offset, place)
        return ast.Access(
            kind="allow" if keyword == "allow" else "deny", pattern=str(pattern), span=span
        )
    if kind == "logcommon":
        return ast.LogCommon(span=_span(tokens[0], offset, place))
    if kind == "logjson":
        return ast.LogJson(span=_span(tokens[0], offset, place))
    if kind == "include":
        return ast.Include(pattern=str(tokens[1]), span=_span(tokens[1], offset, place))
    if kind == "setting":
        name, value = tokens
        value_span = _span(value, offset, place)
        whole = replace(value_span, column=_span(name, offset, place).column)
        return ast.SettingLine(str(name), str(value), whole, value_span)
    if kind == "metrics":
        address, port = _address(tokens[1], offset, place), _port(tokens[2], offset, place)
        whole = replace(
            address.span,
            column=_span(tokens[0], offset, place).column,
            end_column=port.span.end_column,
        )
        return ast.MetricsLine(address=address, port=port, span=whole)
    if kind == "pidlogfile":
        keyword, name = tokens
        return ast.PidLogFile(path=str(name), span=_span(name, offset, place), keyword=str(keyword))
    (name,) = tokens
    return ast.LogFile(path=str(name), span=_span(name, offset, place))


def _recover_rule(raw: str, offset: int, place: Place) -> ast.BrokenRule | None:
    """What can be read of a broken line meant as a rule: it opens a rule's scope, and
    its bind address and port are kept when those two words parse."""
    words = list(_WORD.finditer(raw.split("#")[0]))
    if not words or words[0].group().lower() in KEYWORDS:
        return None
    whole = span_at(place, offset + 1, words[0].start() + 1, words[-1].end() + 1)
    if len(words) < 2:
        return ast.BrokenRule(None, None, whole)
    try:  # the bind as it stands, with a placeholder connect
        tree = _parser().parse(raw[: words[1].end()] + " 0 1\n", start="line")
    except lark.exceptions.UnexpectedInput:
        return ast.BrokenRule(None, None, whole)
    node = next(iter(tree.find_data("rule")), None)
    if node is None:
        return ast.BrokenRule(None, None, whole)
    tokens = _tokens(node)
    return ast.BrokenRule(
        _address(tokens[0], offset, place), _port(tokens[1], offset, place), whole
    )


# -- the funnel: Lark errors -> diagnostics -------------------------------------


def _word_at(raw: str, column: int) -> tuple[int, int]:
    """The 1-based [start, end) columns of the blank-delimited word at or after a column."""
    match = _WORD.search(raw, column - 1)
    if match is None:
        end = len(raw.rstrip("\r")) + 1
        return end, end + 1
    return match.start() + 1, match.end() + 1


def _expected_text(expected: set[str]) -> str:
    names = sorted({_TERMINAL_NAMES.get(t, t) for t in expected})
    if not names:
        return "a blank"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _expected(error: lark.exceptions.UnexpectedInput) -> set[str]:
    """What the parser could take where it stopped."""
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        return set(error.allowed or ())
    if not isinstance(error, lark.exceptions.UnexpectedToken):
        return set()
    return set(error.expected)


def _syntax_error(
    error: lark.exceptions.UnexpectedInput, raw: str, line: int, place: Place
) -> Diagnostic:
    expected = _expected(error)
    column = error.column if isinstance(error.column, int) and error.column > 0 else 1
    start, end = _word_at(raw, column)
    invisible = _invisible(raw, end)
    if invisible is not None:
        return _invisible_error(raw, invisible, line, place)
    word = raw[start - 1 : end - 1]
    if word and not word.startswith(("[", "#")):
        # `[timeout=x]`: the fault is `x`, not the bracket that closes the group.
        word = word.rstrip("],") or word
        end = start + len(word)
    found = f"'{word}'" if word else "the end of the line"
    code, options_hint = "E001", None
    if word.startswith("#"):
        found = f"the comment '{word}'"
    message = f"expected {_expected_text(expected)}, found {found}"
    if "PATTERN" in expected and word and not word.startswith("#"):
        code, message = "E008", f"invalid access pattern '{word}'"
    elif expected <= {"TIMEOUT", "SRC", "RULE_OPTION", "FLAG"} and word:
        name = re.split(r"[=,\]]", word)[0]
        if name:
            end = start + len(name)
            code, message = "E009", f"unknown option '{name}'"
            close = difflib.get_close_matches(name.lower(), OPTIONS, n=1)
            options_hint = (
                f"did you mean '{close[0]}'?"
                if close and close[0] != name.lower()
                else "the options are " + ", ".join(OPTIONS)
            )
        else:  # `[]`, `[,]`, `[timeout=5,]`: no option where one must be
            end = start + 1
            message = f"expected an option (timeout=N, src=ADDRESS, ...), found '{raw[start - 1]}'"
    hint = options_hint if code == "E009" else _hint(raw, word, expected)
    for other in _WORD.finditer(raw):
        keyword = _miscased_keyword(other.group())
        if keyword is not None:
            hint = f"keywords are lowercase: write '{keyword}'"
            if other.end() + 1 <= start:
                start, end = other.start() + 1, other.end() + 1
            break
    return make(code, message, span_at(place, line, start, end), hint=hint)


# Characters a terminal does not show, by what to do about them.
_INVISIBLE_NAMES = {
    "\r": "CARRIAGE RETURN",
    "\x0b": "LINE TABULATION",
    "\x0c": "FORM FEED",
    "\x1b": "ESCAPE",
    "\x7f": "DELETE",
}


def _invisible(raw: str, before: int, first: int = 0) -> int | None:
    """The 0-based index of the first invisible character in ``raw`` from index ``first``
    to before column ``before`` (a line's own CR of a CRLF ending does not count), or
    None."""
    for index in range(first, min(before - 1, len(raw))):
        c = raw[index]
        if c in " \t" or (c == "\r" and index == len(raw) - 1):
            continue
        if unicodedata.category(c) in ("Cc", "Cf", "Zs", "Zl", "Zp"):
            return index
    return None


def _invisible_error(raw: str, index: int, line: int, place: Place) -> Diagnostic:
    c = raw[index]
    name = _INVISIBLE_NAMES.get(c) or unicodedata.name(c, "a control character")
    if c == "\ufeff":
        hint = "save the file as UTF-8 without a byte order mark"
    elif c == "\r":
        hint = "the file has CR line endings: convert them to LF (or CRLF)"
    elif unicodedata.category(c) == "Zs":
        hint = "replace it with a plain space"
    else:
        hint = "remove it"
    message = f"invisible character U+{ord(c):04X} {name}"
    return make("E001", message, span_at(place, line, index + 1, index + 2), hint=hint)


def _miscased_keyword(word: str) -> str | None:
    """The keyword ``word`` is in capitals (`ALLOW`, `80/UDP`, `[TIMEOUT=5`), or None; a
    name that merely holds one (`GW-DENY`) is not a keyword."""
    lowered = word.lower().lstrip("[,").rstrip("],")
    for keyword in _LOWERCASE_WORDS:
        if keyword in word:
            continue
        if keyword.startswith("/"):
            hit = lowered.endswith(keyword)
        else:
            hit = lowered == keyword or lowered.startswith((keyword + "=", keyword + "#"))
        if hit:
            return keyword
    return None


def _hint(raw: str, word: str, expected: set[str]) -> str | None:
    if "PATTERN" in expected:
        if "/" in word:
            return "no CIDR in rinetd patterns: write 10.1.2.* for 10.1.2.0/24"
        return "patterns use digits, hex letters, '.', ':' and the globs * and ?, e.g. 10.0.0.*"
    if "ADDRESS" in expected:
        if word.startswith("["):
            return "write IPv6 addresses without brackets, e.g. ::1"
        if ":" in word and "." in word:
            return "rinetd 0.73 accepts no IPv4-mapped IPv6 address: write the IPv4 address"
        if "%" in word:
            return "rinetd 0.73 accepts no scoped IPv6 address (%interface)"
        if word.endswith("."):
            return "drop the trailing dot of the host name"
    if "PORT" in expected and re.match(r"[-\w]+/", word):
        return "the protocol is /tcp or /udp, glued to the port: 80/udp"
    if "_EOL" in expected and "[" in word:
        return "one statement per line; options go in one [ ] group separated by commas"
    first = _WORD.search(raw)
    if first and "PORT" in expected and first.group() not in KEYWORDS:
        close = difflib.get_close_matches(first.group(), KEYWORDS, n=1)
        if close:
            return f"did you mean '{close[0]}'?"
    return None
