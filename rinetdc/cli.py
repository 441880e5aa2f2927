"""The ``rinetdc`` command: check, compile, fmt and bundle.

Exit codes: 0 clean (warnings allowed unless --strict), 1 the configuration
has errors, 2 usage or I/O trouble.  Nothing is written unless the input is
clean, and outputs are replaced atomically, so a broken configuration never
replaces a working rule set.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import click

from rinetd_run.document import read
from rinetd_run.ruleset import RuleSet, RuleSetError

from . import __version__
from .bundle import bundle
from .check import Result, check, paused_gc
from .emit import render
from .fmt import format_ruleset
from .render import render_json, render_text, summary
from .resolve import NoResolver, Resolver, SystemResolver

EXIT_ERRORS = 1
EXIT_TROUBLE = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"rinetdc: {message}", err=True)
    sys.exit(EXIT_TROUBLE)


def _read(path: str) -> str:
    """The text of a file (or stdin for ``-``); exit 2 on anything unreadable or binary."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        _fail(f"cannot read {path}: {error.strerror or error}")
    if b"\0" in data:
        _fail(f"{path} is a binary file, not a rinetd configuration")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        _fail(f"{path} is not UTF-8 text (byte {error.start} is invalid)")


def _write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (stdout for ``-``) so readers see the old or the new file."""
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except OSError as error:
        _fail(f"cannot write {path}: {error.strerror or error}")


def _resolver(no_resolve: bool) -> Resolver:
    return NoResolver() if no_resolve else SystemResolver()


def _report(path: str, result: Result, output: str, *, err: bool) -> None:
    name = "<stdin>" if path == "-" else path
    if output == "json":
        click.echo(render_json(name, result.diagnostics), nl=False, err=err)
        return
    text = render_text(name, result.config.lines, result.diagnostics)
    if text:
        click.echo(text, nl=False, err=err)
        click.echo(f"{name}: {summary(result.diagnostics)}", err=True)


def _exit_code(result: Result, strict: bool) -> int:
    return EXIT_ERRORS if result.errors or (strict and result.warnings) else 0


_no_resolve = click.option(
    "--no-resolve",
    is_flag=True,
    help="Check host names for syntax only (for machines without the production DNS).",
)
_strict = click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
_format = click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="How to print diagnostics.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rinetdc")
def main() -> None:
    """Check and compile rinetd 0.73 configurations."""


@main.command("check")
@click.argument("config", metavar="CONFIG")
@_no_resolve
@_strict
@_format
def check_command(config: str, no_resolve: bool, strict: bool, output: str) -> None:
    """Report every problem in CONFIG (`-` for stdin)."""
    result = check(_read(config), _resolver(no_resolve))
    _report(config, result, output, err=False)
    sys.exit(_exit_code(result, strict))


@main.command("compile")
@click.argument("config", metavar="CONFIG")
@click.option(
    "-o", "--output", "target", required=True, help="The JSON file to write, - for stdout."
)
@_no_resolve
@_strict
@_format
def compile_command(config: str, target: str, no_resolve: bool, strict: bool, output: str) -> None:
    """Compile CONFIG into the frozen JSON rule set; write nothing if it has errors."""
    text = _read(config)
    with paused_gc():
        result = check(text, _resolver(no_resolve))
        code = _exit_code(result, strict)
        frozen = render(result.ruleset) if code == 0 else None
    _report(config, result, output, err=True)
    if frozen is not None:
        _write(target, frozen)
    sys.exit(code)


def load_ruleset(path: str) -> RuleSet:
    """A rule set file, read as strictly as rinetd-run reads it; exit 2 otherwise."""
    try:
        return read(_read(path), path)
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
    data = bundle(interpreter)
    try:
        Path(target).write_bytes(data)
        os.chmod(target, 0o755)
    except OSError as error:
        _fail(f"cannot write {target}: {error.strerror or error}")


@main.command("fmt")
@click.argument("rules", metavar="RULES.json")
@click.option("-o", "--output", "target", default="-", show_default=True, help="Where to write.")
def fmt_command(rules: str, target: str) -> None:
    """Write a compiled rule set back as a canonical rinetd.conf."""
    _write(target, format_ruleset(load_ruleset(rules)))
