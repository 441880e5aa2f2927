"""The interpreter lock handed back to the event loop often while a thread of ours does
long Python work beside it (reading a rule set, writing the metrics page).

At the default 5 ms switch interval every system call of a forwarded request
could wait that long for such a thread; at 0.2 ms it barely waits.  Used on the
event loop only, so a count is enough to let two such works overlap: the
interval goes back when the last one ends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SWITCH", "loop_first"]

SWITCH = 0.0002  # seconds
_under_way = 0
_saved = 0.005


@contextmanager
def loop_first() -> Iterator[None]:
    global _under_way, _saved
    if _under_way == 0:
        _saved = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH)
    _under_way += 1
    try:
        yield
    finally:
        _under_way -= 1
        if _under_way == 0:
            sys.setswitchinterval(_saved)
