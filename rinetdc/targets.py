"""The program a configuration is for, as one policy over the diagnostics.

rinetd-run (the default) takes them as they are.  The C rinetd 0.73 makes an
error (E014) of every extension of the language and of every line it reads
otherwise than rinetd-run does (W105, W110).  ``check`` applies the policy once,
to the diagnostics of every file, before they are sorted and placed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from . import ast
from .diagnostics import Diagnostic, Severity
from .validate.rinetd073 import READ_OTHERWISE_BY_073, check_extensions

__all__ = ["TARGETS", "Target"]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    extended: bool  # the extended language is allowed

    def judge(self, config: ast.Config, found: Sequence[Diagnostic]) -> list[Diagnostic]:
        """``found`` as this target sees the configuration, with what it adds."""
        if self.extended:
            return list(found)
        return [*(self._as_error(d) for d in found), *check_extensions(config)]

    def _as_error(self, d: Diagnostic) -> Diagnostic:
        if d.code not in READ_OTHERWISE_BY_073:
            return d
        message = f"not for {self.name.replace('-', ' ')}: {d.message}"
        return replace(d, code="E014", severity=Severity.ERROR, message=message)


TARGETS = {
    "rinetd-run": Target("rinetd-run", extended=True),
    "rinetd-0.73": Target("rinetd-0.73", extended=False),
}
