"""The runtime's layers: its decisions are pure modules that never do I/O.

The modules named here decide (access, log lines, reload plans, limits, the rule set
model, the option table, ...); they, and everything of the runtime they import, import
none of the modules through which a program waits, talks to the network or touches
the system. The event loop code around them only moves bytes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

RUNTIME = ROOT / "runtime" / "rinetd_run"
PURE = (
    "access",
    "balance",
    "budget",
    "canonical",
    "counters",
    "deadlines",
    "kernel_choice",
    "kernel_patterns",
    "kernel_table",
    "limits",
    "link",
    "logline",
    "name_table",
    "options",
    "plan",
    "proxy",
    "ruleset",
    "slices",
    "status",
)
FORBIDDEN = {"asyncio", "os", "socket", "threading", "select", "selectors", "subprocess"}


def _imports(module: str) -> tuple[set[str], set[str]]:
    """The outside modules and the runtime's own modules that ``module`` imports."""
    tree = ast.parse((RUNTIME / f"{module}.py").read_text())
    outside: set[str] = set()
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            outside |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x, from .x import y
                if node.module:
                    own.add(node.module.split(".")[0])
                else:
                    own |= {alias.name for alias in node.names}
            elif node.module:
                outside.add(node.module.split(".")[0])
    return outside, own


def _closure(module: str) -> dict[str, set[str]]:
    """Each runtime module ``module`` reaches, with the outside modules it imports."""
    seen: dict[str, set[str]] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not Path(RUNTIME / f"{name}.py").exists():
            continue
        outside, own = _imports(name)
        seen[name] = outside
        todo += sorted(own)
    return seen


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_reaches_no_io(module: str) -> None:
    reached = _closure(module)
    doing_io = {name: sorted(found & FORBIDDEN) for name, found in reached.items()}
    assert {name: found for name, found in doing_io.items() if found} == {}


def test_the_check_sees_io_where_there_is_some() -> None:
    assert "asyncio" in _closure("server")["server"]
    assert "socket" in _closure("lookup")["lookup"]
