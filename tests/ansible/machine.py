"""A real systemd, booted as PID 1 of fresh namespaces over an overlay of this host's root.

The role's service is tested under it: `systemctl` start, reload, stop, the journal,
the sandbox, all for real.  The machine has its own PID, mount, UTS, IPC, cgroup and
network namespaces; its root is an overlay of the host's `/` whose changes live in a
tmpfs, so nothing it does reaches the host's files.  Two settings keep the host safe:
`container=` is set (systemd's shutdown would otherwise remount the shared root file
system read-only) and `/proc/sys` is read-only inside (PID 1 would otherwise rewrite
host-wide sysctls).  `/etc/systemd/system` is a tmpfs holding one target of ours, so
no unit of the host starts; it reaches basic.target at boot, so that what a service
pulls in has run before a test uses the machine.  /tmp is the overlay of the host's, so
a checkout there is seen inside, and systemd-tmpfiles (which would empty it) is masked.
Stopping kills PID 1 (the kernel ends every process of the namespace with it) and
removes the cgroups made for it.
"""

from __future__ import annotations

import contextlib
import os
import pty
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup/unified")  # the host's writable cgroup v2 tree
TARGET = "rinetdc-test.target"

# Run by unshare as the first process of the new namespaces: builds the root, then
# becomes systemd.  $1: the work folder, $2: the pty for /dev/console.
_SETUP = r"""
set -eu
W=$1 R=$1/root
mount -t tmpfs -o mode=0700 tmpfs "$W/layers"
mkdir "$W/layers/upper" "$W/layers/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/layers/upper,workdir=$W/layers/work" "$R"
mount -t proc proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
# The machine's own network namespace's forwarding switches stay writable (what
# dataplane kernel turns on), and conntrack's accounting; every other sysctl, some
# host-wide, is read-only.
# Conntrack's accounting switch (logs of dataplane kernel) exists once its module is in.
modprobe -q nf_conntrack 2>/dev/null || true
for knob in net/ipv4/ip_forward net/ipv6/conf/all/forwarding net/netfilter/nf_conntrack_acct; do
    [ -e "$R/proc/sys/$knob" ] && mount --bind "$R/proc/sys/$knob" "$R/proc/sys/$knob"
done
mount -o remount,bind,ro "$R/proc/sys"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$R/dev"
for node in null zero full random urandom tty; do
    touch "$R/dev/$node"
    mount --bind "/dev/$node" "$R/dev/$node"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
touch "$R/dev/console"
mount --bind "$2" "$R/dev/console"
for folder in run etc/systemd/system; do
    mount -t tmpfs -o mode=0755 tmpfs "$R/$folder"
done
# /tmp stays the overlay of the host's (a checkout under /tmp is seen inside); tmpfiles
# would empty it at boot or when a service pulls sysinit.target in.
for unit in systemd-tmpfiles-setup.service systemd-tmpfiles-clean.timer; do
    ln -s /dev/null "$R/etc/systemd/system/$unit"
done
cat > "$R/etc/systemd/system/rinetdc-test.target" <<'EOF'
[Unit]
Description=rinetdc test machine
Wants=basic.target systemd-journald.service
After=basic.target
EOF
mkdir -p "$R/.host"
cd "$R"
pivot_root . .host
umount -l /.host
exec env -i container=rinetdc-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --unit=rinetdc-test.target
"""


class Machine:
    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="rinetdc-machine-"))
        self.cgroup = CGROUPS / f"rinetdc-test-{os.getpid()}-{self.work.name[-8:]}"
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0  # the machine's PID 1, as the host sees it
        self._console = -1

    def boot(self, timeout: float = 30.0) -> None:
        (self.work / "layers").mkdir()
        (self.work / "root").mkdir()
        (self.work / "setup.sh").write_text(_SETUP)
        self.cgroup.mkdir()
        self._console, console = pty.openpty()
        self.process = subprocess.Popen(
            [
                "sh",
                "-c",
                'echo $$ > "$0/cgroup.procs" && exec "$@"',
                str(self.cgroup),
                "unshare",
                "--pid",
                "--fork",
                "--kill-child=SIGKILL",
                "--mount",
                "--uts",
                "--ipc",
                "--net",
                "--cgroup",
                "--propagation",
                "private",
                "sh",
                str(self.work / "setup.sh"),
                str(self.work),
                os.ttyname(console),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(console)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._drain_console()
            if self.process.poll() is not None:
                assert self.process.stderr is not None
                raise RuntimeError(f"the machine did not boot: {self.process.stderr.read()!r}")
            pid = self._pid1()
            if pid and Path(f"/proc/{pid}/root/run/systemd/private").exists():
                self.pid = pid
                self.wait_until_running(deadline - time.monotonic())
                return
            time.sleep(0.05)
        raise RuntimeError("the machine did not boot in time")

    def _pid1(self) -> int:
        """systemd, the child of unshare (which forked it as PID 1 of the namespace)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError, ValueError):
            for child in children.read_text().split():
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return int(child)
        return 0

    def _drain_console(self) -> None:
        """Read what systemd writes on its console, so that it never blocks on it."""
        os.set_blocking(self._console, False)
        with contextlib.suppress(OSError):
            while os.read(self._console, 65536):
                pass

    def wait_until_running(self, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 1.0)
        state = ""
        while time.monotonic() < deadline:
            self._drain_console()
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the machine is {state or 'not answering'}")

    def run(
        self, *command: str, check: bool = True, timeout: float = 60, **options: object
    ) -> subprocess.CompletedProcess[str]:
        """``command`` inside the machine: its namespaces, its root, as root."""
        self._drain_console()
        done = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-a", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **options,  # type: ignore[call-overload]
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def path(self, inside: str) -> Path:
        """A path of the machine, as the host reaches it (its /tmp and /run are its own)."""
        return Path(f"/proc/{self.pid}/root") / inside.lstrip("/")

    def stop(self) -> None:
        """Kill PID 1: the kernel ends every process of the machine with it; then remove
        its cgroups and folders."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                if self.pid:
                    os.kill(self.pid, signal.SIGKILL)
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        if self._console >= 0:
            os.close(self._console)
            self._console = -1
        deadline = time.monotonic() + 20
        while self.cgroup.exists() and time.monotonic() < deadline:
            _remove_cgroup(self.cgroup)
            time.sleep(0.05)
        shutil.rmtree(self.work, ignore_errors=True)


def _remove_cgroup(path: Path) -> None:
    """Remove a cgroup and the ones systemd made below it, deepest first (a cgroup is
    removed with rmdir once it has no process and no child)."""
    for folder in sorted(
        (p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        with contextlib.suppress(OSError):
            folder.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()
