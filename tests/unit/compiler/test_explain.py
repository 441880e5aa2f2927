"""``rinetdc check --explain``: a line per rule saying whether `dataplane kernel` has
nftables forward it or why it stays in rinetd-run, after the diagnostics."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run

CONF = """\
dataplane kernel
0.0.0.0 80 10.0.0.2 8080
0.0.0.0 81 10.0.0.2 8081 [proxy-protocol=v1]
0.0.0.0 82 backend.example 80
"""


def test_each_rule_says_where_it_is_forwarded(tmp_path: Path) -> None:
    conf = tmp_path / "rinetd.conf"
    conf.write_text(CONF)
    done = run("rinetdc", "check", "--no-resolve", "--explain", "rinetd.conf", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "dataplane kernel",
        "rinetd.conf:2: 0.0.0.0 80/tcp -> 10.0.0.2 8080/tcp: kernel",
        "rinetd.conf:3: 0.0.0.0 81/tcp -> 10.0.0.2 8081/tcp: "
        "user space: proxy-protocol: rinetd-run writes the header",
        "rinetd.conf:4: 0.0.0.0 82/tcp -> backend.example 80/tcp: "
        "kernel, once backend.example resolves to an address the kernel takes",
    ]


def test_under_dataplane_user_every_rule_is_user_space_and_says_if_it_need_be(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "rinetd.conf"
    conf.write_text(CONF.replace("dataplane kernel\n", ""))
    done = run("rinetdc", "check", "--no-resolve", "--explain", str(conf))
    lines = done.stdout.splitlines()
    assert lines[0] == "dataplane user"
    assert lines[1].endswith(": user space: dataplane user (the kernel could forward it)")
    assert lines[2].endswith(": user space: proxy-protocol: rinetd-run writes the header")


def test_explain_is_text_only_and_without_it_nothing_is_explained(tmp_path: Path) -> None:
    conf = tmp_path / "rinetd.conf"
    conf.write_text(CONF)
    refused = run("rinetdc", "check", "--explain", "--format", "json", str(conf))
    assert refused.returncode == 2 and "--explain prints text" in refused.stderr
    plain = run("rinetdc", "check", "--no-resolve", str(conf))
    assert plain.returncode == 0 and plain.stdout == ""


def test_the_0_73_target_refuses_the_statement(tmp_path: Path) -> None:
    conf = tmp_path / "rinetd.conf"
    conf.write_text(CONF)
    done = run("rinetdc", "check", "--no-resolve", "--target", "rinetd-0.73", str(conf))
    assert done.returncode == 1 and "error[E014]: dataplane is not in rinetd 0.73" in done.stdout


def test_a_file_name_cannot_forge_a_line_or_a_terminal_escape(tmp_path: Path) -> None:
    conf = tmp_path / "ev\x1bil\nrinetd.conf:9: forged: kernel.conf"
    conf.write_text(CONF)
    done = run("rinetdc", "check", "--no-resolve", "--explain", conf.name, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert len(done.stdout.splitlines()) == 4  # the dataplane line and one per rule
