"""The real `rinetdc` command: exit codes, output formats, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers import CORPUS, run

GOOD = "0 18080 127.0.0.1 8080\n"


def _write(tmp_path: Path, text: str | bytes, name: str = "r.conf") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_check_clean_config_exits_0_silently(tmp_path: Path) -> None:
    done = run("rinetdc", "check", str(_write(tmp_path, GOOD)))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_check_errors_exit_1_with_located_caret_diagnostics(tmp_path: Path) -> None:
    path = _write(tmp_path, "allow 10.0.0.x\n0 80 127.0.0.1 99999\n")
    done = run("rinetdc", "check", "--no-resolve", str(path))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == f"{path}:1:7: error[E008]: invalid access pattern '10.0.0.x'"
    assert lines[1] == " 1 | allow 10.0.0.x"
    assert lines[2] == "   |       ^^^^^^^^"
    assert lines[3].startswith(" = hint: patterns use")
    assert f"{path}:2:16: error[E006]: port 99999 is out of range" in lines
    assert done.stderr.strip() == f"{path}: 2 errors, 0 warnings"


def test_warnings_exit_0_unless_strict(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "logcommon\n")
    assert run("rinetdc", "check", str(path)).returncode == 0
    assert run("rinetdc", "check", "--strict", str(path)).returncode == 1


def test_json_format_carries_every_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "0 80 127.0.0.1 80\n0 80 127.0.0.1 81\n")
    done = run("rinetdc", "check", "--format", "json", str(path))
    assert done.returncode == 1
    document = json.loads(done.stdout)
    (diagnostic,) = document["diagnostics"]
    assert diagnostic == {
        "file": str(path),
        "line": 2,
        "column": 1,
        "end": {"line": 2, "column": 1, "end_column": 5},
        "code": "E010",
        "severity": "error",
        "message": "0 80/tcp is bound twice",
        "hint": "remove one of the two rules",
        "related": [
            {
                "file": str(path),
                "line": 1,
                "column": 1,
                "end_column": 5,
                "message": "first bound here",
            }
        ],
        "included_from": [],
    }
    assert (document["errors"], document["warnings"]) == (1, 0)


def test_io_trouble_exits_2(tmp_path: Path) -> None:
    cases = {
        "missing": str(tmp_path / "nope.conf"),
        "directory": str(tmp_path),
        "binary": str(_write(tmp_path, b"0 80 \x00\x01\x02", "b.conf")),
        "latin-1": str(_write(tmp_path, "# caf\xe9\n".encode("latin-1"), "l.conf")),
    }
    for name, path in cases.items():
        done = run("rinetdc", "check", path)
        assert done.returncode == 2, name
        assert done.stderr.startswith("rinetdc: "), name
        assert "Traceback" not in done.stderr
    assert run("rinetdc", "check").returncode == 2  # usage
    assert run("rinetdc", "frobnicate").returncode == 2


def test_check_reads_stdin() -> None:
    assert run("rinetdc", "check", "-", stdin=GOOD.encode()).returncode == 0
    done = run("rinetdc", "check", "-", stdin=b"garbage\n")
    assert done.returncode == 1 and done.stdout.startswith("<stdin>:1:8: error[E001]")


def test_stdin_takes_the_name_and_folder_it_is_given(tmp_path: Path) -> None:
    """--stdin-filename: diagnostics name the file, includes are read from its folder,
    and compile from stdin writes the bytes compiling the file writes."""
    site = tmp_path / "site"
    site.mkdir()
    _write(site, GOOD, "rules.conf")
    top = _write(site, "include rules.conf\n", "rinetd.conf")
    named = ["--stdin-filename", str(top)]
    done = run("rinetdc", "check", *named, "-", stdin=b"include rules.conf\ngarbage\n")
    assert done.returncode == 1 and done.stdout.startswith(f"{top}:2:8: error[E001]")
    elsewhere = tmp_path / "elsewhere.conf"  # its folder has no rules.conf
    done = run("rinetdc", "check", "--stdin-filename", str(elsewhere), "-", stdin=top.read_bytes())
    assert done.returncode == 1 and f"there is no file {tmp_path / 'rules.conf'}" in done.stdout
    # Confined as a file's includes are: nothing outside NAME's folder tree is read.
    _write(tmp_path, GOOD, "outside.conf")
    done = run("rinetdc", "check", *named, "-", stdin=b"include ../outside.conf\n")
    assert done.returncode == 1 and "error[E021]" in done.stdout
    piped = run("rinetdc", "compile", *named, "-o", "-", "-", stdin=top.read_bytes())
    written = tmp_path / "rules.json"
    assert run("rinetdc", "compile", str(top), "-o", str(written)).returncode == 0
    assert piped.returncode == 0 and piped.stdout == written.read_text()


def test_compile_writes_canonical_json_and_is_deterministic(tmp_path: Path) -> None:
    conf = CORPUS / "valid" / "seed.conf"
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert run("rinetdc", "compile", "--no-resolve", str(conf), "-o", str(first)).returncode == 0
    assert run("rinetdc", "compile", "--no-resolve", str(conf), "-o", str(second)).returncode == 0
    assert (
        first.read_bytes() == second.read_bytes() == (CORPUS / "valid" / "seed.json").read_bytes()
    )
    out = run("rinetdc", "compile", "--no-resolve", str(conf), "-o", "-")
    assert out.stdout.encode() == first.read_bytes()


def test_compile_with_errors_leaves_the_old_output_untouched(tmp_path: Path) -> None:
    target = tmp_path / "rules.json"
    assert run("rinetdc", "compile", str(_write(tmp_path, GOOD)), "-o", str(target)).returncode == 0
    before = target.read_bytes()
    bad = _write(tmp_path, GOOD + "0 80 127.0.0.1 99999\n", "bad.conf")
    done = run("rinetdc", "compile", str(bad), "-o", str(target))
    assert done.returncode == 1
    assert "error[E006]" in done.stderr
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.conf", "r.conf", "rules.json"]


def test_fmt_writes_conf_and_refuses_edited_json(tmp_path: Path) -> None:
    compiled = tmp_path / "seed.json"
    compiled.write_bytes((CORPUS / "valid" / "seed.json").read_bytes())
    done = run("rinetdc", "fmt", str(compiled))
    assert done.returncode == 0
    assert "206.125.69.81 www 10.1.1.2 8080\nallow 141.73.4.*\n" in done.stdout
    compiled.write_text(compiled.read_text().replace("8080", "8081"))
    done = run("rinetdc", "fmt", str(compiled))
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"rinetdc: {compiled} was changed after it was compiled (digest mismatch)",
    )
    compiled.write_text("{")
    assert run("rinetdc", "fmt", str(compiled)).returncode == 2


def _include_tree(tmp_path: Path) -> Path:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "rinetd.conf").write_text(
        "logfile /var/log/rinetd.log\ninclude conf.d/*.conf\n0 80 10.0.0.2 80\n"
    )
    (tmp_path / "conf.d" / "web.conf").write_text("0 443 10.0.0.3 443\n0 80 10.0.0.9 80\n")
    return tmp_path / "rinetd.conf"


def test_diagnostics_in_included_files_name_the_file_and_the_chain(tmp_path: Path) -> None:
    _include_tree(tmp_path)
    done = run("rinetdc", "check", "--no-resolve", "rinetd.conf", cwd=tmp_path)
    assert done.returncode == 1
    assert "rinetd.conf:3:1: error[E010]: 0 80/tcp is bound twice" in done.stdout
    assert "conf.d/web.conf:2:1: note: first bound here" in done.stdout
    (tmp_path / "conf.d" / "web.conf").write_text("0 443 10.0.0.3 443\n0 81 10.0.0.9 99999\n")
    done = run("rinetdc", "check", "--no-resolve", "--format", "json", "rinetd.conf", cwd=tmp_path)
    (diagnostic,) = json.loads(done.stdout)["diagnostics"]
    assert (diagnostic["file"], diagnostic["line"], diagnostic["code"]) == (
        "conf.d/web.conf",
        2,
        "E006",
    )
    assert diagnostic["included_from"] == [{"file": "rinetd.conf", "line": 2}]
    text = run("rinetdc", "check", "--no-resolve", "rinetd.conf", cwd=tmp_path).stdout
    assert " = included from rinetd.conf:2" in text


def test_compile_records_each_item_s_file(tmp_path: Path) -> None:
    _include_tree(tmp_path)
    (tmp_path / "rinetd.conf").write_text("include conf.d/*.conf\n0 80 10.0.0.2 80\n")
    (tmp_path / "conf.d" / "web.conf").write_text("0 443 10.0.0.3 443\n")
    out = tmp_path / "rules.json"
    done = run("rinetdc", "compile", "--no-resolve", str(tmp_path / "rinetd.conf"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["files"] == [
        {"name": "rinetd.conf", "included_from": None},
        {"name": "conf.d/web.conf", "included_from": {"file": 0, "line": 1}},
    ]
    assert [(r["file"], r["line"]) for r in document["rules"]] == [(1, 1), (0, 2)]


def test_target_rinetd_073_refuses_the_extensions(tmp_path: Path) -> None:
    path = _write(tmp_path, "0 80 10.0.0.2 80 [keepalive=off]\n")
    assert run("rinetdc", "check", "--no-resolve", str(path)).returncode == 0
    done = run("rinetdc", "check", "--no-resolve", "--target", "rinetd-0.73", str(path))
    assert done.returncode == 1
    assert "error[E014]: the option keepalive is not in rinetd 0.73" in done.stdout
    out = tmp_path / "rules.json"
    compiled = run(
        "rinetdc", "compile", "--no-resolve", "--target", "rinetd-0.73", str(path), "-o", str(out)
    )
    assert compiled.returncode == 1 and not out.exists()


def test_an_include_never_opens_a_fifo_or_a_device(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.conf")
    path = _write(tmp_path, "include *.conf\ninclude /dev/null\n0 80 10.0.0.2 80\n")
    done = run("rinetdc", "check", "--no-resolve", "--include-root", "/dev", str(path))  # no hang
    assert done.returncode == 1
    assert "pipe.conf is not a regular file" in done.stdout
    assert "/dev/null is not a regular file" in done.stdout


def test_a_fault_reads_the_same_for_0_73_in_the_top_file_and_in_an_included_one(
    tmp_path: Path,
) -> None:
    """One target policy: a last line without newline is the same E014, with the same
    words, wherever it is."""
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "rinetd.conf").write_text("0 80 10.0.0.1 80")
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "rinetd.conf").write_text("include part.conf\n")
    (tmp_path / "inc" / "part.conf").write_text("0 80 10.0.0.1 80")

    def diagnostics(folder: str) -> list[tuple[str, str]]:
        done = run(
            "rinetdc", "check", "--no-resolve", "--target", "rinetd-0.73", "--format", "json",
            "rinetd.conf", cwd=tmp_path / folder,
        )  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        found = json.loads(done.stdout)["diagnostics"]
        return [(d["code"], d["message"]) for d in found if "newline" in d["message"]]

    top = diagnostics("top")
    assert top == diagnostics("inc")
    assert len(top) == 1 and top[0][0] == "E014" and top[0][1].startswith("not for rinetd 0.73")
