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
from typing import NoReturn

import click

from rinetd_run.document import read
from rinetd_run.ruleset import RuleSet, RuleSetError

from . import __version__
from .bundle import bundle
from .check import Result, check, paused_gc
from .ci import render_github, render_sarif, render_sarif_files
from .diagnostics import Diagnostic
from .emit import render
from .files import FileTrouble, read_text, write
from .fmt import format_ruleset
from .render import render_json, render_text, summary
from .resolve import NoResolver, Resolver, SystemResolver
from .semdiff import compare
from .validate import TARGETS

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


# The machine-readable formats: each also carries an exit-2 trouble, as an error.
_RENDERERS: dict[str, Callable[[str, Sequence[Diagnostic], str | None], str]] = {
    "json": render_json,
    "github": render_github,
    "sarif": render_sarif,
}


def _fail(message: str, report: tuple[str, str] | None = None) -> NoReturn:
    """Exit 2 with ``message``; in a machine-readable ``(format, file)`` report too."""
    _say(f"rinetdc: {message}\n", err=True)
    if report is not None and report[0] in _RENDERERS:
        _say(_RENDERERS[report[0]](report[1], (), message))
    sys.exit(EXIT_TROUBLE)


def _read(path: str, output: str = "text") -> str:
    try:
        return read_text(path)
    except FileTrouble as trouble:
        _fail(str(trouble), (output, _name(path)))


def _write(path: str, data: bytes, mode: int | None = None) -> None:
    try:
        write(path, data, mode)
    except FileTrouble as trouble:
        _fail(str(trouble))


def _resolver(no_resolve: bool) -> Resolver:
    return NoResolver() if no_resolve else SystemResolver()


def _name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def _report(path: str, result: Result, output: str, *, err: bool) -> None:
    name = _name(path)
    if output in _RENDERERS:
        _say(_RENDERERS[output](name, result.diagnostics, None), err=err)
        return
    top = result.sources.lines[0]
    text = render_text(name, top, result.diagnostics, _included(result))
    if text:
        _say(text, err=err)
        _say(f"{name}: {summary(result.diagnostics)}\n", err=True)


def _included(result: Result) -> dict[str, tuple[str, ...]]:
    """The lines of each included file, by the name diagnostics give it."""
    sources = result.sources
    return dict(zip(sources.names[1:], sources.lines[1:], strict=True))


def _exit_code(result: Result, strict: bool) -> int:
    return EXIT_ERRORS if result.errors or (strict and result.warnings) else 0


_no_resolve = click.option(
    "--no-resolve",
    is_flag=True,
    help="Check host names for syntax only (for machines without the production DNS).",
)
_strict = click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
_target = click.option(
    "--target",
    "language",  # `target` is compile's output
    type=click.Choice(TARGETS),
    default=TARGETS[0],
    show_default=True,
    help="The program the file is for: rinetd-run (the extended language) or the C "
    "rinetd 0.73 (extensions and lines it reads otherwise are errors).",
)
_format = click.option(
    "--format",
    "output",
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
def check_command(
    configs: tuple[str, ...], no_resolve: bool, strict: bool, output: str, language: str
) -> None:
    """Report every problem in each CONFIG (`-` for stdin); the worst exit code wins.

    With several files, `--format json` prints a list of the one-file documents and
    `--format sarif` one log with every file's results."""
    resolver = _resolver(no_resolve)
    results = [
        (config, check(_read(config, output), resolver, name=_name(config), target=language))
        for config in configs
    ]
    if len(results) > 1 and output == "json":
        documents = [json.loads(render_json(_name(c), r.diagnostics)) for c, r in results]
        _say(json.dumps(documents, indent=2, sort_keys=True) + "\n")
    elif len(results) > 1 and output == "sarif":
        _say(render_sarif_files([(_name(c), r.diagnostics) for c, r in results]))
    else:
        for config, result in results:
            _report(config, result, output, err=False)
    sys.exit(max(_exit_code(result, strict) for _config, result in results))


@main.command("compile")
@click.argument("config", metavar="CONFIG")
@click.option(
    "-o", "--output", "target", required=True, help="The JSON file to write, - for stdout."
)
@_no_resolve
@_strict
@_format
@_target
def compile_command(
    config: str, target: str, no_resolve: bool, strict: bool, output: str, language: str
) -> None:
    """Compile CONFIG into the frozen JSON rule set; write nothing if it has errors."""
    text = _read(config, output)
    with paused_gc():
        result = check(text, _resolver(no_resolve), name=_name(config), target=language)
        code = _exit_code(result, strict)
        frozen = render(result.ruleset) if code == 0 else None
    _report(config, result, output, err=True)
    if frozen is not None:
        _write(target, frozen.encode("ascii"))
    sys.exit(code)


def _sealed(text: str, path: str) -> RuleSet:
    """A rule set's text, read as strictly as rinetd-run reads it; exit 2 otherwise."""
    try:
        return read(text, path)
    except RuleSetError as error:
        _fail(str(error))


@main.command("bundle")
@click.option("-o", "--output", "target", required=True, help="The .pyz file to write.")
@click.option(
    "--python",
    "interpreter",
    default="/usr/bin/env python3",
    show_default=True,
    help="The interpreter named on the archive's first line.",
)
def bundle_command(target: str, interpreter: str) -> None:
    """Pack rinetd-run into one zipapp that needs only Python on the host."""
    _write(target, bundle(interpreter), mode=0o755)


@main.command("fmt")
@click.argument("rules", metavar="RULES.json")
@click.option("-o", "--output", "target", default="-", show_default=True, help="Where to write.")
def fmt_command(rules: str, target: str) -> None:
    """Write a compiled rule set back as a canonical rinetd.conf."""
    _write(target, format_ruleset(_sealed(_read(rules), rules)).encode("utf-8"))


def _meaning(path: str) -> RuleSet:
    """A configuration or a compiled rule set, as a rule set; exit 2 if it has errors."""
    text = _read(path)
    if text.lstrip().startswith("{"):
        return _sealed(text, path)
    result = check(text, NoResolver())
    if result.errors:
        _say(render_text(_name(path), result.config.lines, result.diagnostics), err=True)
        _fail(f"{path} has errors; fix them to compare it")
    return result.ruleset


@main.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="For people, or JSON for tools.",
)
def diff_command(old: str, new: str, output: str) -> None:
    """Compare two configurations (or rule sets) by what they do: exit 0 when they are
    equivalent, 1 when not."""
    changes = compare(_meaning(old), _meaning(new))
    if output == "json":
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
