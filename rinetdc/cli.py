"""The ``rinetdc`` command: check, compile, fmt, diff and bundle.

Exit codes: 0 clean (warnings allowed unless --strict), 1 the configuration
has errors, 2 usage or I/O trouble.  Nothing is written unless the input is
clean, and outputs are written as ``files`` says (a regular file replaced
atomically, a device written into), so a broken configuration never replaces
a working rule set and no output harms the system.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import click

from rinetd_run.document import read
from rinetd_run.ruleset import RuleSet, RuleSetError

from . import __version__
from .bundle import bundle
from .check import Result, check, paused_gc
from .ci import render_github, render_sarif, render_sarif_files
from .diagnostics import Diagnostic, Severity, Span, make
from .emit import seal
from .explain import explain as render_explain
from .files import FileTrouble, read_text, write
from .fmt import format_ruleset
from .include import Sources, inside, one_file, real_path
from .render import render_json, render_text, summary
from .resolve import NoResolver, Resolver, SystemResolver
from .semdiff import compare
from .targets import TARGETS
from .visible import visible

EXIT_ERRORS = 1
EXIT_TROUBLE = 2


def _say(text: str, *, err: bool = False) -> None:
    """Print ``text``; a standard output that cannot take it (a full disk, a closed
    pipe) is exit 2 with one line, not a traceback."""
    if not err:
        try:
            write("-", text.encode("utf-8"))
        except FileTrouble as trouble:
            # Nothing more may reach the broken stream, not even at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            _fail(str(trouble))
        return
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except OSError:
        pass  # stderr is gone: the exit code still says it


_CI_FORMATS = ("github", "sarif")

# The machine-readable formats: each also carries an exit-2 trouble, as an error.
_RENDERERS: dict[str, Callable[[Sources, Sequence[Diagnostic], str | None], str]] = {
    "json": render_json,
    "github": render_github,
    "sarif": render_sarif,
}


def _fail(message: str, report: tuple[str, str] | None = None) -> NoReturn:
    """Exit 2 with ``message``; in a machine-readable ``(format, file)`` report too."""
    _say(f"rinetdc: {message}\n", err=True)
    if report is not None and report[0] in _RENDERERS:
        _say(_RENDERERS[report[0]](one_file(report[1], ()), (), message))
    sys.exit(EXIT_TROUBLE)


def _read(path: str, format: str = "text") -> str:
    try:
        return read_text(path)
    except FileTrouble as trouble:
        _fail(str(trouble), (format, _name(path)))


def _write(path: str, data: bytes, mode: int | None = None) -> None:
    try:
        write(path, data, mode)
    except FileTrouble as trouble:
        _fail(str(trouble))


def _resolver(no_resolve: bool) -> Resolver:
    return NoResolver() if no_resolve else SystemResolver()


def _name(path: str, stdin_name: str | None = None) -> str:
    return (stdin_name or "<stdin>") if path == "-" else path


@dataclass(frozen=True, slots=True)
class _Report:
    """One file named on the command line: checked, or the trouble that stopped it."""

    name: str  # as diagnostics name it
    diagnostics: tuple[Diagnostic, ...]
    sources: Sources  # the files diagnostics are in
    result: Result | None = None
    trouble: str | None = None  # exit 2: the file could not be checked


def _checked(
    path: str,
    format: str,
    target: str,
    resolver: Resolver,
    roots: Sequence[str],
    stdin_name: str | None = None,
) -> _Report:
    name = _name(path, stdin_name)
    try:
        if format in _CI_FORMATS and path != "-":
            _confined(path, roots)
        text = read_text(path)
    except FileTrouble as trouble:
        diagnostic = make("E023", str(trouble), Span(1, 1, 2))
        return _Report(name, (diagnostic,), one_file(name, ()), trouble=str(trouble))
    result = check(text, resolver, name=name, target=target, include_roots=roots)
    return _Report(name, result.diagnostics, result.sources, result)


def _confined(path: str, roots: Sequence[str]) -> None:
    """Under the CI formats, a file named on the command line must lie in the working
    directory (or an include root) once links are followed: a link committed to a
    repository must not make a CI job print a file of the runner."""
    allowed = [os.path.realpath("."), *(os.path.realpath(root) for root in roots)]
    if not inside(real_path(path), allowed):
        raise FileTrouble(
            f"{visible(path)} leads outside the working directory: not read "
            "(--format github and sarif check only files of the checkout)"
        )


def _report(report: _Report, format: str, *, err: bool) -> None:
    if format in _RENDERERS:
        # github: the trouble is the E023 annotation already
        trouble = None if format == "github" else report.trouble
        _say(_RENDERERS[format](report.sources, report.diagnostics, trouble), err=err)
        return
    if report.result is None:
        return  # the trouble was said on stderr
    result = report.result
    text = render_text(result.sources, result.diagnostics)
    if text:
        _say(text, err=err)
        _say(f"{visible(report.name)}: {summary(result.diagnostics)}\n", err=True)


def _exit_code(diagnostics: Sequence[Diagnostic], strict: bool) -> int:
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    return EXIT_ERRORS if errors or (strict and len(diagnostics) > errors) else 0


_no_resolve = click.option(
    "--no-resolve",
    is_flag=True,
    help="Check host names for syntax only (for machines without the production DNS).",
)
_strict = click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
_target = click.option(
    "--target",
    type=click.Choice(list(TARGETS)),
    default="rinetd-run",
    show_default=True,
    help="The program the file is for: rinetd-run (the extended language) or the C "
    "rinetd 0.73 (extensions and lines it reads otherwise are errors).",
)
_include_root = click.option(
    "--include-root",
    "include_roots",
    multiple=True,
    metavar="DIR",
    help="A folder includes may read besides the top file's folder tree (repeatable).",
)
_stdin_filename = click.option(
    "--stdin-filename",
    metavar="NAME",
    help="The name diagnostics give standard input (`-`); its includes are read from "
    "NAME's folder, as they would be from the file's.",
)
_format = click.option(
    "--format",
    type=click.Choice(["text", "json", "github", "sarif"]),
    default="text",
    show_default=True,
    help="How to print diagnostics: for people, JSON, GitHub annotations, or SARIF 2.1.0.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rinetdc")
def main() -> None:
    """Check and compile rinetd 0.73 configurations."""


@main.command("check")
@click.argument("configs", metavar="CONFIG...", nargs=-1, required=True)
@_no_resolve
@_strict
@_format
@_target
@_include_root
@_stdin_filename
@click.option(
    "--explain",
    is_flag=True,
    help="After the diagnostics, say for each rule whether `dataplane kernel` has nftables "
    "forward it, or why it stays in rinetd-run (text format only).",
)
def check_command(
    configs: tuple[str, ...],
    no_resolve: bool,
    strict: bool,
    format: str,
    target: str,
    include_roots: tuple[str, ...],
    stdin_filename: str | None,
    explain: bool,
) -> None:
    """Report every problem in each CONFIG (`-` for stdin); the worst exit code wins.

    With several files, `--format json` prints a list of the one-file documents and
    `--format sarif` one log with every file's results.  A file that cannot be read
    is one more result (E023) and makes the exit code 2; the others are still checked."""
    if explain and format != "text":
        raise click.UsageError("--explain prints text: use it with --format text")
    resolver = _resolver(no_resolve)
    reports = [
        _checked(config, format, target, resolver, include_roots, stdin_filename)
        for config in configs
    ]
    trouble = next((r.trouble for r in reports if r.trouble), None)
    for report in reports:
        if report.trouble is not None:
            _say(f"rinetdc: {report.trouble}\n", err=True)
    if format == "json":
        documents = [json.loads(render_json(r.sources, r.diagnostics, r.trouble)) for r in reports]
        chosen: object = documents if len(reports) > 1 else documents[0]
        _say(json.dumps(chosen, indent=2, sort_keys=True) + "\n")
    elif format == "sarif":
        _say(render_sarif_files([(r.sources, r.diagnostics) for r in reports], trouble))
    else:
        for report in reports:
            _report(report, format, err=False)
            if explain and report.result is not None:
                _say(render_explain(report.result.ruleset, report.result.sources))
    codes = [EXIT_TROUBLE if r.trouble else _exit_code(r.diagnostics, strict) for r in reports]
    sys.exit(max(codes))


@main.command("compile")
@click.argument("config", metavar="CONFIG")
@click.option("-o", "--output", required=True, help="The JSON file to write, - for stdout.")
@_no_resolve
@_strict
@_format
@_target
@_include_root
@_stdin_filename
def compile_command(
    config: str,
    output: str,
    no_resolve: bool,
    strict: bool,
    format: str,
    target: str,
    include_roots: tuple[str, ...],
    stdin_filename: str | None,
) -> None:
    """Compile CONFIG into the frozen JSON rule set; write nothing if it has errors, or
    if the output is one of the files read."""
    with paused_gc():
        resolver = _resolver(no_resolve)
        report = _checked(config, format, target, resolver, include_roots, stdin_filename)
        if report.trouble is not None or report.result is None:
            _fail(report.trouble or "", (format, report.name))
        code = _exit_code(report.diagnostics, strict)
        frozen = seal(report.result.ruleset) if code == 0 else None
    _report(report, format, err=True)
    if frozen is not None:
        _refuse_overwriting_input(output, report.result.sources.names, config)
        _write(output, frozen.encode("ascii"))
    sys.exit(code)


def _refuse_overwriting_input(output: str, names: Sequence[str], config: str) -> None:
    """Exit 2 when ``output`` is (or links to) a file the configuration was read from."""
    if output == "-":
        return
    try:
        out = os.stat(output)
    except OSError:
        return  # a new file, or one `write` will report
    read_from = [config, *names[1:]] if config != "-" else list(names[1:])
    for name in read_from:
        try:
            found = os.stat(name)
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (out.st_dev, out.st_ino):
            _fail(f"refusing to write {visible(output)}: it is {visible(name)}, an input")


def _sealed(text: str, path: str) -> RuleSet:
    """A rule set's text, read as strictly as rinetd-run reads it; exit 2 otherwise."""
    try:
        return read(text, path)
    except RuleSetError as error:
        _fail(str(error))


@main.command("bundle")
@click.option("-o", "--output", required=True, help="The .pyz file to write.")
@click.option(
    "--python",
    "interpreter",
    default="/usr/bin/env python3",
    show_default=True,
    help="The interpreter named on the archive's first line.",
)
def bundle_command(output: str, interpreter: str) -> None:
    """Pack rinetd-run into one zipapp that needs only Python on the host."""
    _write(output, bundle(interpreter), mode=0o755)


@main.command("fmt")
@click.argument("rules", metavar="RULES.json")
@click.option("-o", "--output", default="-", show_default=True, help="Where to write.")
def fmt_command(rules: str, output: str) -> None:
    """Write a compiled rule set back as a canonical rinetd.conf."""
    _write(output, format_ruleset(_sealed(_read(rules), rules)).encode("utf-8"))


def _meaning(path: str, roots: Sequence[str]) -> RuleSet:
    """A configuration (its includes read from its own folder) or a compiled rule set,
    as a rule set; exit 2 if it has errors."""
    text = _read(path)
    if text.lstrip().startswith("{"):
        return _sealed(text, path)
    result = check(text, NoResolver(), name=_name(path), include_roots=roots)
    if result.errors:
        _report(_Report(_name(path), result.diagnostics, result.sources, result), "text", err=True)
        _fail(f"{visible(path)} has errors; fix them to compare it")
    return result.ruleset


@main.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "--format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="For people, or JSON for tools.",
)
@_include_root
def diff_command(old: str, new: str, format: str, include_roots: tuple[str, ...]) -> None:
    """Compare two configurations (or rule sets) by what they do: exit 0 when they are
    equivalent, 1 when not."""
    changes = compare(_meaning(old, include_roots), _meaning(new, include_roots))
    if format == "json":
        document = {
            "equivalent": not changes,
            "changes": [
                {"kind": c.kind, "where": c.where, "text": c.text, "widens": c.widens}
                for c in changes
            ],
        }
        _say(json.dumps(document, indent=2, sort_keys=True) + "\n")
    else:
        marks = {"rule-added": "+", "rule-removed": "-"}
        lines = [f"{marks.get(c.kind, '~')} {c.where}: {c.text}" for c in changes]
        _say("".join(line + "\n" for line in lines))
    sys.exit(EXIT_ERRORS if changes else 0)
