"""Helpers every test folder shares: paths, running our console scripts, compiling a
configuration with the real rinetdc, waiting for a fact, and parsing the log formats."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
SCHEMA = ROOT / "schema" / "rules.schema.json"
BIN = Path(sys.executable).parent


def wait_until(
    fact: Callable[[], T], what: str, timeout: float = 10.0, interval: float = 0.02
) -> T:
    """Ask ``fact`` until it gives a true value, and return that value; after ``timeout``
    seconds, fail saying ``what`` was awaited and what ``fact`` gave last.  Tests wait for
    facts this way, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        found = fact()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout} s for {what}; last: {found!r}")
        time.sleep(interval)


def run(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one of our console scripts (``rinetdc ...``) as a user would."""
    command = [str(BIN / args[0]), *args[1:]]
    return subprocess.run(
        command,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def compile_config(text: str, workdir: Path, *flags: str) -> Path:
    """``workdir``/rinetd.conf (LOG standing for ``workdir``/rinetd.log) compiled by the
    real rinetdc (with ``flags``, such as --no-resolve) into ``workdir``/rules.json."""
    conf, rules = workdir / "rinetd.conf", workdir / "rules.json"
    conf.write_text(text.replace("LOG", str(workdir / "rinetd.log")))
    done = subprocess.run(
        [str(BIN / "rinetdc"), "compile", *flags, str(conf), "-o", str(rules)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return rules


TAB_FIELDS = (
    "date", "client", "bind_host", "bind_port", "connect_host", "connect_port",
    "bytes_in", "bytes_out", "result",
)  # fmt: skip
_COMMON = re.compile(
    r"(?P<client>\S+) - - \[(?P<date>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d)  (?P<zone>[-+]\d{4})\] "
    r'"GET /rinetd-services/(?P<bind_host>[^/]+)/(?P<bind_port>\d+)/(?P<connect_host>[^/]+)/'
    r'(?P<connect_port>\d+)/(?P<result>[^"]+) HTTP/1\.0" 200 (?P<bytes_out>\d+) - - - '
    r"(?P<bytes_in>\d+)"
)


def parse_tab(line: str) -> dict[str, str]:
    """One tab-format line, field by field; the date keeps 0.73's trailing space."""
    fields = line.split("\t")
    assert len(fields) == 9, line
    assert re.fullmatch(r"\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d ", fields[0]), fields[0]
    return dict(zip(TAB_FIELDS, fields, strict=True))


def parse_common(line: str) -> dict[str, str]:
    match = _COMMON.fullmatch(line)
    assert match is not None, line
    return match.groupdict()
