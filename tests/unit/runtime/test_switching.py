"""The switch interval is short while any long work beside the loop is under way, and
back to what it was once the last one ends, however they overlap."""

from __future__ import annotations

import sys

import pytest

from rinetd_run.switching import SWITCH, loop_first


def test_overlapping_works_restore_the_interval_once_the_last_ends() -> None:
    before = sys.getswitchinterval()
    first, second = loop_first(), loop_first()
    first.__enter__()
    assert sys.getswitchinterval() == pytest.approx(SWITCH)
    second.__enter__()
    first.__exit__(None, None, None)  # the reload ends while a page is still written
    assert sys.getswitchinterval() == pytest.approx(SWITCH)
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(before)
