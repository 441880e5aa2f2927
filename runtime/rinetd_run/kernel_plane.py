"""The kernel data plane's I/O: loading ``kernel_table``'s script with ``nft -f``, the
sysctls it needs, and removing both at exit.

IP forwarding is turned on only for an IP version that has kernel rules and had it
off, and only after the table whose forward chain lets through nothing but our
connections is loaded; conntrack's byte accounting only when kernel rules are logged
and it was off.  At exit they are put back first, then the table is deleted.  What
they were before us is kept in the table's comment, so a run that was killed is
followed by one that still knows what to put back.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Sequence

from .kernel_table import FAMILY, NAME, KernelRule, render

__all__ = ["KernelError", "KernelPlane"]

_SYSCTL = {
    "ipv4": "/proc/sys/net/ipv4/ip_forward",
    "ipv6": "/proc/sys/net/ipv6/conf/all/forwarding",
    "acct": "/proc/sys/net/netfilter/nf_conntrack_acct",
}
_BEFORE = re.compile(r'comment "forwarding before: ipv4=([01]) ipv6=([01])(?: acct=([01]))?"')
NFT_WAIT = 30.0  # seconds nft may take to load a table


class KernelError(Exception):
    """The table could not be loaded (or nft run); what nft said."""


def _nft(arguments: Sequence[str], script: str | None = None) -> str:
    try:
        done = subprocess.run(
            ["nft", *arguments],
            input=script,
            capture_output=True,
            text=True,
            timeout=NFT_WAIT,
            check=False,
        )
    except FileNotFoundError:
        raise KernelError("nft is not installed (Debian's nftables package)") from None
    except subprocess.TimeoutExpired:
        raise KernelError(f"nft did not finish within {NFT_WAIT:g} s") from None
    if done.returncode != 0:
        said = " ".join(done.stderr.split()) or f"exit {done.returncode}"
        raise KernelError(f"nft refused the table: {said[:500]}")
    return done.stdout


def _read(path: str) -> str:
    with open(path) as file:
        return file.read().strip()


class KernelPlane:
    """Owns table ``inet rinetd_run`` and the forwarding it had to turn on."""

    def __init__(self) -> None:
        self.before: dict[str, str] | None = None  # each switch before us
        self.turned_on: set[str] = set()
        self.loaded = False

    def _learn_before(self) -> dict[str, str]:
        """From a table a killed run left, else from the sysctls as they are."""
        left = _left_behind()
        if left:
            return left
        before = {}
        for name, path in _SYSCTL.items():
            try:
                before[name] = _read(path)
            except OSError:
                # Accounting's switch appears with conntrack, off unless a module
                # parameter says otherwise; forwarding unknown: never turned on.
                before[name] = "0" if name == "acct" else "1"
        return before

    def script(self, rules: Sequence[KernelRule]) -> str:
        if self.before is None:
            self.before = self._learn_before()
        before = self.before
        guard = frozenset(version for version in (4, 6) if before.get(f"ipv{version}") == "0")
        comment = "forwarding before: " + " ".join(
            f"{name}={before.get(name, '1')}" for name in _SYSCTL
        )
        return render(rules, guard, comment)

    def check(self, rules: Sequence[KernelRule]) -> None:
        """KernelError unless nft would load the table for ``rules`` (nothing changes)."""
        if rules or self.loaded:
            _nft(["-c", "-f", "-"], self.script(rules))

    def apply(self, rules: Sequence[KernelRule], accounting: bool = False) -> None:
        """Load the table for ``rules`` in one transaction (KernelError: the old one
        stays), then turn forwarding on where they need it, and conntrack's byte
        accounting if ``accounting`` (their log lines count bytes); none: remove it all."""
        if not rules:
            self.remove()
            return
        _nft(["-f", "-"], self.script(rules))
        self.loaded = True
        wanted = {f"ipv{rule.version}" for rule in rules} | ({"acct"} if accounting else set())
        assert self.before is not None
        for name in sorted(wanted - self.turned_on):
            if self.before.get(name) == "0":
                try:
                    _switch(name, "1")
                except KernelError:
                    # DNAT without forwarding would strand remote clients, and log
                    # lines without counts would lie.
                    self.remove()
                    raise
                self.turned_on.add(name)
        for name in sorted(self.turned_on - wanted):
            _switch(name, "0")
            self.turned_on.discard(name)

    def counters(self) -> str:
        """`nft -j list counters` of our table (KernelError if nft cannot say)."""
        return _nft(["-j", "list", "counters", "table", FAMILY, NAME])

    def remove(self) -> None:
        """Forwarding as it was, then no table (nothing to do if none was loaded)."""
        for name in sorted(self.turned_on):
            with contextlib.suppress(KernelError):  # what _switch raises
                _switch(name, "0")
        self.turned_on.clear()
        if self.loaded:
            with contextlib.suppress(KernelError):
                _nft(["delete", "table", FAMILY, NAME])
            self.loaded = False

    @staticmethod
    def cleanup() -> bool:
        """After a run that did not stop (killed, crashed): forwarding put back as its
        table's comment says, then the table deleted; False if there was none."""
        left = _left_behind()
        if left is None:
            return False
        for name, value in left.items():
            if value == "0":
                with contextlib.suppress(KernelError):
                    _switch(name, "0")
        _nft(["delete", "table", FAMILY, NAME])
        return True


def _left_behind() -> dict[str, str] | None:
    """What the switches were before the run whose table is loaded now, as its comment
    says (empty without the comment); None when there is no table."""
    try:
        listed = _nft(["list", "table", FAMILY, NAME])
    except KernelError:
        return None
    found = _BEFORE.search(listed)
    if not found:
        return {}
    return {name: value for name, value in zip(_SYSCTL, found.groups(), strict=True) if value}


def _switch(name: str, value: str) -> None:
    try:
        with open(_SYSCTL[name], "w") as file:
            file.write(value)
    except OSError as error:
        raise KernelError(f"cannot set {_SYSCTL[name]} to {value}: {error}") from None
