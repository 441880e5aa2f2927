"""rinetdc on a pull request written to leak the CI runner's files or to stall its job:
the real command on hostile trees (links out of the checkout, files named to forge
workflow commands, include fan-outs, garbage), in every output format."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rinetd_run.document import read
from rinetdc.check import check
from rinetdc.emit import seal
from rinetdc.resolve import NoResolver
from tests.helpers import BIN, run

FORMATS = ("text", "json", "github", "sarif")
SECRET = "ghp_0123456789secret"


def _check(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run("rinetdc", "check", "--no-resolve", *args, cwd=cwd)


def _everything(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


@pytest.fixture
def runner(tmp_path: Path) -> Path:
    """A runner's home with a secret beside a checkout (returned)."""
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "secrets.env").write_text(f"GITHUB_TOKEN={SECRET}\n")
    (tmp_path / "home" / "service.conf").write_text(f"0 80 10.0.0.1 {SECRET}\n")
    repo = tmp_path / "repo"
    (repo / "conf.d").mkdir(parents=True)
    return repo


# -- 1. includes never read outside the checkout -----------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_include_out_of_the_checkout_is_named_never_quoted(runner: Path, fmt: str) -> None:
    home = runner.parent / "home"
    (runner / "conf.d" / "key.conf").symlink_to(home / "secrets.env")
    (runner / "rinetd.conf").write_text(
        "include ../home/secrets.env\n"
        f"include {home}/service.conf\n"
        "include conf.d/*.conf\n"
        "include ../home/*\n"
        "0 80 10.0.0.1 80\n"
    )
    done = _check(runner, "--format", fmt, "rinetd.conf")
    assert done.returncode == 1
    assert SECRET not in _everything(done) and "hunter" not in _everything(done)
    assert _everything(done).count("E021") >= 4
    assert "secrets.env" in _everything(done)  # named


def test_include_root_widens_what_includes_may_read(runner: Path) -> None:
    home = runner.parent / "home"
    (runner / "rinetd.conf").write_text(f"include {home}/service.conf\n")
    assert "E021" in _check(runner, "rinetd.conf").stdout
    widened = _check(runner, "--include-root", str(home), "rinetd.conf")
    assert "E021" not in widened.stdout and "E005" in widened.stdout


def test_includes_follow_links_inside_the_checkout(runner: Path) -> None:
    (runner / "shared").mkdir()
    (runner / "shared" / "web.conf").write_text("0 81 10.0.0.1 80\n")
    (runner / "conf.d" / "web.conf").symlink_to("../shared/web.conf")
    (runner / "rinetd.conf").write_text("include conf.d/*.conf\n0 80 10.0.0.1 80\n")
    assert _check(runner, "rinetd.conf").returncode == 0


@pytest.mark.parametrize("fmt", ["github", "sarif"])
def test_a_top_file_linked_out_of_the_checkout_is_not_read_by_the_ci_formats(
    runner: Path, fmt: str
) -> None:
    (runner / "rinetd.conf").symlink_to(runner.parent / "home" / "secrets.env")
    (runner / "good.conf").write_text("0 80 10.0.0.1 80\n")
    done = _check(runner, "--format", fmt, "rinetd.conf", "good.conf")
    assert done.returncode == 2
    assert SECRET not in _everything(done)
    assert "leads outside the working directory" in done.stderr


def test_proc_and_devices_are_refused_without_opening(runner: Path) -> None:
    (runner / "rinetd.conf").write_text(
        "include /proc/self/status\ninclude /proc/1/cwd/x\ninclude /dev/*\n0 80 10.0.0.1 80\n"
    )
    started = time.monotonic()
    done = _check(runner, "--format", "sarif", "rinetd.conf")
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    results = json.loads(done.stdout)["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["E021", "E021", "E021"]
    assert "Name:" not in done.stdout and "Traceback" not in done.stderr


# -- 2. file names cannot forge workflow commands or terminal sequences -----------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_file_names_never_reach_an_output_raw(tmp_path: Path, fmt: str) -> None:
    binary = "x\n::warning title=I::forged\n.conf"
    (tmp_path / binary).write_bytes(b"0 80 10.0.0.1 80\n\0")
    escape = "e\x1b[31m.conf"
    (tmp_path / escape).write_text("0 80 10.0.0.1 80\n0 80 10.0.0.1 80\n")  # E010
    done = _check(tmp_path, "--format", fmt, binary, escape)
    assert done.returncode == 2
    for stream in (done.stdout, done.stderr):
        assert "\x1b" not in stream
        assert not any(line.startswith("::warning title=I") for line in stream.splitlines())
    assert "forged" in _everything(done)  # shown, escaped


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_name_that_is_not_utf8_is_shown_by_its_bytes(tmp_path: Path, fmt: str) -> None:
    name = b"caf\xe9.conf"
    (tmp_path / os.fsdecode(name)).write_text("0 80 10.0.0.1 80\n0 80 10.0.0.1 80\n")
    done = subprocess.run(
        [str(BIN / "rinetdc"), "check", "--no-resolve", "--format", fmt, name],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr
    shown = (done.stdout + done.stderr).decode("utf-8")
    if fmt == "json":
        assert json.loads(shown)["file"] == "caf\\xe9.conf"
    else:
        assert "caf%E9.conf" in shown if fmt == "sarif" else "caf\\xe9.conf" in shown


# -- 3, 4. includes and garbage are bounded -----------------------------------------------


def _timed(cwd: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = _check(cwd, *args)
    return time.monotonic() - started, done


def test_an_include_fan_out_ends_quickly_with_one_error(tmp_path: Path) -> None:
    for n in range(12):
        (tmp_path / f"f{n}.conf").write_text("include *.conf\n")
    seconds, done = _timed(tmp_path, "--format", "json", "f0.conf")
    assert seconds < 20
    codes = [d["code"] for d in json.loads(done.stdout)["diagnostics"]]
    assert codes.count("E022") == 1


def test_a_file_and_its_links_are_read_once_each_within_the_budget(tmp_path: Path) -> None:
    rules = "".join(f"0 {1000 + n} 10.0.0.1 80\n" for n in range(2000))
    (tmp_path / "big.conf").write_text("include *.conf\n" + rules)
    for n in range(16):
        (tmp_path / f"link{n}.conf").symlink_to("big.conf")
    (tmp_path / "top.conf").write_text("include *.conf\n")
    seconds, done = _timed(tmp_path, "top.conf")
    assert seconds < 20 and done.returncode == 1


def test_a_pattern_of_many_levels_is_refused_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "rinetd.conf").write_text("include " + "*/" * 1500 + "x.conf\n")
    for fmt in FORMATS:
        done = _check(tmp_path, "--format", fmt, "rinetd.conf")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "E021" in done.stdout


def test_garbage_stops_after_a_hundred_errors(tmp_path: Path) -> None:
    (tmp_path / "garbage.conf").write_text("x\n" * 131072)  # 256 KiB
    seconds, done = _timed(tmp_path, "--format", "json", "garbage.conf")
    assert seconds < 20
    diagnostics = json.loads(done.stdout)["diagnostics"]
    assert len(diagnostics) == 101
    assert "rinetdc stopped reading here (130,972 lines not read)" in diagnostics[-1]["message"]


# -- 5. one bad file hides nothing -----------------------------------------------------------


def test_every_readable_file_is_reported_beside_a_bad_one(tmp_path: Path) -> None:
    for name in ("a.conf", "c.conf"):
        (tmp_path / name).write_text("0 80 10.0.0.1 80\n0 80 10.0.0.1 80\n")
    (tmp_path / "b.conf").write_bytes(b"\0binary")
    args = ("a.conf", "b.conf", "c.conf")
    sarif = _check(tmp_path, "--format", "sarif", *args)
    assert sarif.returncode == 2
    results = json.loads(sarif.stdout)["runs"][0]["results"]
    located = [
        (r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
        for r in results
    ]
    assert located == [("E010", "a.conf"), ("E023", "b.conf"), ("E010", "c.conf")]
    github = _check(tmp_path, "--format", "github", *args)
    assert [line.split(",")[0] for line in github.stdout.splitlines()] == [
        "::error file=a.conf",
        "::error file=b.conf",
        "::error file=c.conf",
    ]
    documents = json.loads(_check(tmp_path, "--format", "json", *args).stdout)
    assert [d["file"] for d in documents] == list(args)
    assert "error" in documents[1] and "error" not in documents[0]
    text = _check(tmp_path, *args)
    assert text.returncode == 2 and text.stdout.count("E010") == 2


# -- 7. the expander and the grammar read one file name ----------------------------------


def test_a_folder_with_glob_characters_is_taken_literally(tmp_path: Path) -> None:
    for folder in ("prod[1]", "prod1"):
        (tmp_path / folder / "conf.d").mkdir(parents=True)
    (tmp_path / "prod[1]" / "conf.d" / "a.conf").write_text("0 81 10.0.0.1 80\n")
    (tmp_path / "prod1" / "conf.d" / "a.conf").write_text("0 81 10.0.0.1 80\n0 81 10.0.0.1 80\n")
    (tmp_path / "prod[1]" / "rinetd.conf").write_text("include conf.d/*.conf\n")
    assert _check(tmp_path, "prod[1]/rinetd.conf").returncode == 0


def test_dot_dot_through_a_linked_folder_reads_what_the_kernel_reads(tmp_path: Path) -> None:
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "common.conf").write_text("0 81 10.0.0.1 80\n0 81 10.0.0.1 80\n")
    (tmp_path / "common.conf").write_text("0 82 10.0.0.1 80\n")
    (tmp_path / "sub").symlink_to("real/sub")
    (tmp_path / "sub" / "x.conf").write_text("include ../common.conf\n")
    (tmp_path / "rinetd.conf").write_text("include sub/x.conf\n")
    done = _check(tmp_path, "--include-root", str(tmp_path / "real"), "rinetd.conf")
    assert "E010" in done.stdout  # real/common.conf, as open() reads sub/../common.conf


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('include a"b.conf\n', "stray quote"),
        ('include ""\n', "names no file"),
        ('include "\n', "stray quote"),
        ("include web.conf\u00a0\n", "U+00A0 NO-BREAK SPACE"),
        ("include missing.conf\n", "there is no file"),
    ],
)
def test_an_include_line_that_reads_nothing_is_an_error(
    tmp_path: Path, line: str, expected: str
) -> None:
    (tmp_path / "web.conf").write_text("0 81 10.0.0.1 80\n")
    (tmp_path / "rinetd.conf").write_text(line + "0 80 10.0.0.1 80\n")
    done = _check(tmp_path, "rinetd.conf")
    assert done.returncode == 1 and expected in done.stdout


def test_a_hash_inside_an_include_name_is_part_of_it(tmp_path: Path) -> None:
    (tmp_path / "c").write_text("0 80 10.0.0.1 80\n0 80 10.0.0.1 80\n")
    (tmp_path / "c#d.conf").write_text("0 81 10.0.0.1 80\n")
    (tmp_path / "rinetd.conf").write_text("include c#d.conf\n")
    assert _check(tmp_path, "rinetd.conf").returncode == 0  # c#d.conf, not c


# -- 8. compile never overwrites what it read -------------------------------------------------


@pytest.mark.parametrize("output", ["rinetd.conf", "conf.d/web.conf", "link.conf"])
def test_compile_refuses_to_overwrite_an_input(tmp_path: Path, output: str) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "web.conf").write_text("0 81 10.0.0.1 80\n")
    (tmp_path / "rinetd.conf").write_text("include conf.d/*.conf\n0 80 10.0.0.1 80\n")
    (tmp_path / "link.conf").symlink_to("conf.d/web.conf")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.conf")}
    done = run("rinetdc", "compile", "--no-resolve", "rinetd.conf", "-o", output, cwd=tmp_path)
    assert done.returncode == 2 and "an input" in done.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.conf")} == before


# -- 9. what compile writes, the reader takes -------------------------------------------------

_NAMES = st.text(
    st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1
).filter(lambda n: n not in (".", "..") and len(os.fsencode(n)) < 200)
# What an include line can name: no blank, quote or character a terminal does not show.
_INCLUDABLE = _NAMES.filter(
    lambda n: n.isprintable() and not any(c.isspace() or c in '"#' for c in n)
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(top=_NAMES, included=_INCLUDABLE)
def test_compiled_file_names_are_read_back(tmp_path: Path, top: str, included: str) -> None:
    folder = Path(os.fsdecode(os.urandom(6).hex().encode()))
    where = tmp_path / folder
    where.mkdir()
    if top == included:
        included += "x"
    (where / included).write_text("0 81 10.0.0.1 80\n")
    text = f"include {glob.escape(included)}\n0 80 10.0.0.1 80\n"
    result = check(text, NoResolver(), name=str(where / top))
    assert result.errors == 0, result.diagnostics
    read(seal(result.ruleset))  # raises if the reader refuses it


def test_a_file_name_holding_a_newline_compiles_into_a_readable_rule_set(tmp_path: Path) -> None:
    top = tmp_path / "a\nb.conf"
    top.write_text("0 80 10.0.0.1 80\n")
    done = run("rinetdc", "compile", "--no-resolve", str(top), "-o", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    assert run("rinetdc", "fmt", str(tmp_path / "r.json")).returncode == 0


# -- 10. diff reads each file's includes from its own folder ----------------------------------


def test_diff_reads_includes_from_each_files_folder(tmp_path: Path) -> None:
    for side, connect in (("old", "10.0.0.1 80"), ("new", "10.6.6.6 22")):
        (tmp_path / side).mkdir()
        (tmp_path / side / "web.conf").write_text(f"0 80 {connect}\nallow *\n")
        (tmp_path / side / "rinetd.conf").write_text("include web.conf\n")
    done = run("rinetdc", "diff", "old/rinetd.conf", "new/rinetd.conf", cwd=tmp_path)
    assert done.returncode == 1
    assert "connect 10.0.0.1 80/tcp -> 10.6.6.6 22/tcp" in done.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("0 53/udp 10.0.0.1 53/udp\n", "0 53/udp 10.0.0.1 53/udp [keepalive=off]\n"),
        ("0 80 10.0.0.1 80\n", "0 80 10.0.0.1 80\nlogcommon\n"),
        ("0 80 10.0.0.1 80\ndeny 10.*\ndeny 10.1.*\n", "0 80 10.0.0.1 80\ndeny 10.*\n"),
        ("0 80 10.0.0.1 80\nallow 10.*\n", "0 80 10.0.0.1 80\nallow 10.*\nallow 10.1.?\n"),
    ],
)
def test_diff_calls_equivalent_files_the_same(tmp_path: Path, old: str, new: str) -> None:
    (tmp_path / "old.conf").write_text(old)
    (tmp_path / "new.conf").write_text(new)
    done = run("rinetdc", "diff", "old.conf", "new.conf", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "")


# -- 11. smaller ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["-a.example", "a.-b.example"])
def test_a_label_starting_with_a_hyphen_is_refused_as_073_does(tmp_path: Path, host: str) -> None:
    (tmp_path / "rinetd.conf").write_text(f"0 80 {host} 80\n")
    done = _check(tmp_path, "--target", "rinetd-0.73", "rinetd.conf")
    assert done.returncode == 1 and "E003" in done.stdout


def test_no_rules_is_said_on_the_top_file(tmp_path: Path) -> None:
    (tmp_path / "inc.conf").write_text("# nothing\n# at all\n# here\n")
    (tmp_path / "rinetd.conf").write_text("include inc.conf\n")
    (diagnostic,) = json.loads(_check(tmp_path, "--format", "json", "rinetd.conf").stdout)[
        "diagnostics"
    ]
    assert (diagnostic["code"], diagnostic["file"], diagnostic["line"]) == (
        "W106",
        "rinetd.conf",
        1,
    )


def test_sarif_uris_stay_in_the_checkout(tmp_path: Path) -> None:
    repo, shared = tmp_path / "repo", tmp_path / "shared"
    repo.mkdir()
    shared.mkdir()
    (shared / "web.conf").write_text("0 80 10.0.0.1 80\n")
    (repo / "<x.conf").write_text(f"include {shared}/web.conf\n0 80 10.0.0.1 80\n")
    done = _check(repo, "--format", "sarif", "--include-root", str(shared), "<x.conf")
    results = json.loads(done.stdout)["runs"][0]["results"]
    uris = {
        location["physicalLocation"]["artifactLocation"]["uri"]
        for r in results
        for location in r["locations"] + r.get("relatedLocations", [])
    }
    assert uris == {"%3Cx.conf"}
