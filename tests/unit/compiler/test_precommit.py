"""The `rinetdc-check` pre-commit hook, run by the real pre-commit with `try-repo` on a
throw-away git repository: a good configuration passes, a broken one fails with its
diagnostic."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import BIN, ROOT


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _try_repo(repo: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run(
        [str(BIN / "pre-commit"), "try-repo", str(ROOT), "rinetdc-check"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_hook_passes_a_good_config_and_fails_a_broken_one(tmp_path: Path) -> None:
    repo, home = tmp_path / "repo", tmp_path / "pre-commit-home"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "gateway").mkdir()
    (repo / "gateway" / "rinetd.conf").write_text("0 18080 127.0.0.1 8080\n")
    (repo / "notes.txt").write_text("allow 10.0.0.x\n")  # not a configuration: not checked
    _git(repo, "add", ".")
    good = _try_repo(repo, home)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "rinetdc check" in good.stdout and "Passed" in good.stdout

    (repo / "edge.rinetd.conf").write_text("allow 10.0.0.x\n0 18081 127.0.0.1 8080\n")
    _git(repo, "add", ".")
    broken = _try_repo(repo, home)
    assert broken.returncode == 1
    assert "Failed" in broken.stdout
    assert "edge.rinetd.conf:1:7: error[E008]: invalid access pattern '10.0.0.x'" in broken.stdout
