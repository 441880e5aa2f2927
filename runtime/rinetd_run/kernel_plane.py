"""The kernel data plane's I/O: loading ``kernel_table``'s script with ``nft -f``, the
forwarding sysctls it needs, and removing both at exit.

IP forwarding is turned on only for an IP version that has kernel rules and had it
off, and only after the table whose forward chain lets through nothing but our
connections is loaded; at exit it is put back first, then the table is deleted.
What forwarding was before us is kept in the table's comment, so a run that was
killed is followed by one that still knows what to put back.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Sequence

from .kernel_table import FAMILY, NAME, KernelRule, render

__all__ = ["KernelError", "KernelPlane"]

_SYSCTL = {4: "/proc/sys/net/ipv4/ip_forward", 6: "/proc/sys/net/ipv6/conf/all/forwarding"}
_BEFORE = re.compile(r'comment "forwarding before: ipv4=([01]) ipv6=([01])"')
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
        self.before: dict[int, str] | None = None  # forwarding before us, per IP version
        self.turned_on: set[int] = set()
        self.loaded = False

    def _learn_before(self) -> dict[int, str]:
        """From a table a killed run left, else from the sysctls as they are."""
        left = _left_behind()
        if left:
            return left
        before = {}
        for version, path in _SYSCTL.items():
            try:
                before[version] = _read(path)
            except OSError:
                before[version] = "1"  # unknown: never turned on, never guarded
        return before

    def script(self, rules: Sequence[KernelRule]) -> str:
        if self.before is None:
            self.before = self._learn_before()
        before = self.before
        guard = frozenset(version for version in (4, 6) if before.get(version) == "0")
        comment = f"forwarding before: ipv4={before.get(4, '1')} ipv6={before.get(6, '1')}"
        return render(rules, guard, comment)

    def check(self, rules: Sequence[KernelRule]) -> None:
        """KernelError unless nft would load the table for ``rules`` (nothing changes)."""
        if rules or self.loaded:
            _nft(["-c", "-f", "-"], self.script(rules))

    def apply(self, rules: Sequence[KernelRule]) -> None:
        """Load the table for ``rules`` in one transaction (KernelError: the old one
        stays), then turn forwarding on where they need it; none: remove it all."""
        if not rules:
            self.remove()
            return
        _nft(["-f", "-"], self.script(rules))
        self.loaded = True
        wanted = {rule.version for rule in rules}
        assert self.before is not None
        for version in wanted - self.turned_on:
            if self.before.get(version) == "0":
                try:
                    _set_forwarding(version, "1")
                except KernelError:
                    self.remove()  # DNAT without forwarding would strand remote clients
                    raise
                self.turned_on.add(version)
        for version in self.turned_on - wanted:
            _set_forwarding(version, "0")
            self.turned_on.discard(version)

    def remove(self) -> None:
        """Forwarding as it was, then no table (nothing to do if none was loaded)."""
        for version in sorted(self.turned_on):
            with contextlib.suppress(KernelError):  # what _set_forwarding raises
                _set_forwarding(version, "0")
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
        for version, value in left.items():
            if value == "0":
                with contextlib.suppress(KernelError):
                    _set_forwarding(version, "0")
        _nft(["delete", "table", FAMILY, NAME])
        return True


def _left_behind() -> dict[int, str] | None:
    """What forwarding was before the run whose table is loaded now, per IP version, as
    its comment says (empty without the comment); None when there is no table."""
    try:
        listed = _nft(["list", "table", FAMILY, NAME])
    except KernelError:
        return None
    found = _BEFORE.search(listed)
    return {4: found.group(1), 6: found.group(2)} if found else {}


def _set_forwarding(version: int, value: str) -> None:
    try:
        with open(_SYSCTL[version], "w") as file:
            file.write(value)
    except OSError as error:
        raise KernelError(f"cannot set {_SYSCTL[version]} to {value}: {error}") from None
