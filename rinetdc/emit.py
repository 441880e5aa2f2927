"""The rule set model -> the frozen JSON text (a pure function).

``rinetd_run.document`` builds the JSON value (the one place the schema is
written and read) and ``rinetd_run.canonical`` turns it into bytes with the
digest, the same on every machine.
"""

from __future__ import annotations

from rinetd_run.canonical import dumps
from rinetd_run.document import to_document
from rinetd_run.ruleset import RuleSet

__all__ = ["seal"]


def seal(ruleset: RuleSet) -> str:
    """The file text of the frozen rule set, sealed with its digest."""
    return dumps(to_document(ruleset))
