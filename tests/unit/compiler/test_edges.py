"""rinetdc at its edges: special files, endless input, huge numbers, hostile rule sets.

The real ``rinetdc`` command, run as an operator or a CI job would; every case
must end with a located error or a clean exit, never a traceback, a hang or
harm to the files around it.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from rinetd_run.canonical import dumps
from tests.helpers import BIN, CORPUS, run

GOOD = "0 18080 127.0.0.1 8080\n"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mknod and chown need root")


def _conf(tmp_path: Path, text: str = GOOD) -> str:
    path = tmp_path / "r.conf"
    path.write_text(text)
    return str(path)


def _compile_to(tmp_path: Path, target: str) -> subprocess.CompletedProcess[str]:
    return run("rinetdc", "compile", _conf(tmp_path), "-o", target)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _one_line_trouble(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("rinetdc: ")


# -- outputs by kind -------------------------------------------------------------


def test_a_regular_file_is_replaced_keeping_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "rules.json"
    target.write_text("old")
    target.chmod(0o600)
    assert _compile_to(tmp_path, str(target)).returncode == 0
    assert json.loads(target.read_text())["format"] == "rinetdc-rules"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _leftovers(tmp_path) == []


@root_only
def test_a_regular_file_keeps_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "rules.json"
    target.write_text("old")
    os.chown(target, 12345, 23456)
    assert _compile_to(tmp_path, str(target)).returncode == 0
    assert (target.stat().st_uid, target.stat().st_gid) == (12345, 23456)


def test_a_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "current.json"
    link.symlink_to(real.name)
    assert _compile_to(tmp_path, str(link)).returncode == 0
    assert link.is_symlink() and os.readlink(link) == real.name
    assert json.loads(real.read_text())["format"] == "rinetdc-rules"


@root_only
def test_a_null_device_is_written_into_not_replaced(tmp_path: Path) -> None:
    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    assert _compile_to(tmp_path, str(device)).returncode == 0
    assert stat.S_ISCHR(device.stat().st_mode)
    assert (
        run("rinetdc", "fmt", str(CORPUS / "valid" / "seed.json"), "-o", str(device)).returncode
        == 0
    )
    assert stat.S_ISCHR(device.stat().st_mode)
    assert _leftovers(tmp_path) == []


@root_only
def test_a_full_device_is_exit_2_and_stays_a_device(tmp_path: Path) -> None:
    device = tmp_path / "full"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    done = _compile_to(tmp_path, str(device))
    _one_line_trouble(done)
    assert "No space left" in done.stderr
    assert stat.S_ISCHR(device.stat().st_mode)


def test_a_fifo_is_written_into(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert _compile_to(tmp_path, str(fifo)).returncode == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert json.loads(got[0])["format"] == "rinetdc-rules"


@pytest.mark.parametrize("target", ["folder", ""])
def test_a_failed_write_leaves_nothing_behind(tmp_path: Path, target: str) -> None:
    (tmp_path / "folder").mkdir()
    done = run(
        "rinetdc", "compile", _conf(tmp_path), "-o", str(tmp_path / target) if target else ""
    )
    _one_line_trouble(done)
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "folder") == []


# -- standard output that cannot take it ------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["compile", "CONF", "-o", "-"], ["check", "CONF"], ["check", "--format", "json", "CONF"]],
)
def test_a_full_standard_output_is_exit_2(tmp_path: Path, args: list[str]) -> None:
    conf = _conf(tmp_path, GOOD + "logcommon\n")  # a warning, so check prints something
    command = [str(BIN / "rinetdc"), *(conf if a == "CONF" else a for a in args)]
    with open("/dev/full", "w") as full:
        done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    # compile reports its diagnostics on stderr; the trouble is one line after them
    assert done.stderr.splitlines()[-1] == (
        "rinetdc: cannot write standard output: No space left on device"
    )


def test_a_closed_pipe_is_exit_2(tmp_path: Path) -> None:
    # Enough diagnostics to fill the pipe's buffer, so the write meets the closed end.
    conf = _conf(tmp_path, "allow 10.0.0.x\n" * 5000)
    read_end, write_end = os.pipe()
    os.close(read_end)
    done = subprocess.run(
        [str(BIN / "rinetdc"), "check", conf],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    os.close(write_end)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot write standard output" in done.stderr


# -- inputs that never end -----------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "fmt"])
def test_dev_zero_is_refused_at_once(command: str) -> None:
    done = run("rinetdc", command, "/dev/zero")
    _one_line_trouble(done)
    assert "binary" in done.stderr


def test_an_endless_pipe_is_cut_at_the_size_cap() -> None:
    yes = subprocess.Popen(["yes", "0 80 127.0.0.1 80"], stdout=subprocess.PIPE)
    try:
        done = subprocess.run(
            [str(BIN / "rinetdc"), "check", "-"],
            stdin=yes.stdout,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        yes.kill()
        yes.wait()
    _one_line_trouble(done)
    assert "larger than 64 MiB" in done.stderr


def test_json_format_reports_io_trouble_in_its_document(tmp_path: Path) -> None:
    done = run("rinetdc", "check", "--format", "json", str(tmp_path / "missing.conf"))
    assert done.returncode == 2
    document = json.loads(done.stdout)
    assert document["error"].startswith("cannot read")
    assert (document["errors"], document["warnings"]) == (1, 0)
    (diagnostic,) = document["diagnostics"]
    assert diagnostic["code"] == "E023" and diagnostic["message"] == document["error"]


# -- rule sets edited by hand ----------------------------------------------------------

_SEED = json.loads((CORPUS / "valid" / "seed.json").read_text())


def _resealed(tmp_path: Path, change: object) -> str:
    document = copy.deepcopy(_SEED)
    assert callable(change)
    change(document)
    path = tmp_path / "edited.json"
    path.write_text(dumps({k: v for k, v in document.items() if k != "digest"}))
    return str(path)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["rules"][0].update(line="8"),
        lambda d: d["rules"][0]["bind"].update(host="gw\nallow *"),
        lambda d: d["log"].update(file={"path": 7, "line": 1}),
    ],
    ids=["line-as-text", "host-with-newline", "path-as-number"],
)
def test_fmt_refuses_what_rinetd_run_refuses(tmp_path: Path, change: object) -> None:
    _one_line_trouble(run("rinetdc", "fmt", _resealed(tmp_path, change)))


def test_fmt_refuses_json_nested_deep_or_with_huge_numbers(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    _one_line_trouble(run("rinetdc", "fmt", str(path)))
    sealed = (CORPUS / "valid" / "seed.json").read_text()
    path.write_text(sealed.replace('"timeout": 72', '"timeout": ' + "9" * 5000, 1))
    _one_line_trouble(run("rinetdc", "fmt", str(path)))


def test_fmt_writes_non_ascii_file_names(tmp_path: Path) -> None:
    conf = _conf(tmp_path, GOOD + "logfile /var/log/café.log\n")
    assert run("rinetdc", "compile", conf, "-o", str(tmp_path / "r.json")).returncode == 0
    out = tmp_path / "back.conf"
    done = run("rinetdc", "fmt", str(tmp_path / "r.json"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "logfile /var/log/café.log" in out.read_text(encoding="utf-8")


# -- output that grows with the input, not its square ---------------------------------


def test_many_diagnostics_on_one_long_line_stay_small(tmp_path: Path) -> None:
    options = ",".join(["timeout=1"] * 10_000)
    conf = _conf(tmp_path, f"0 80/udp 127.0.0.1 80/udp [{options}]\n")
    done = run("rinetdc", "check", conf)
    assert done.returncode == 0
    assert done.stdout.count("warning[W108]") == 3
    assert "9996 more W108 on this line" in done.stdout
    assert len(done.stdout) < 10_000  # excerpts are a window around the fault
