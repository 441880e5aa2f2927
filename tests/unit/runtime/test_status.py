"""The status file's content and the decision of when a reload asked for has ended
(``status``), and how a round of worker votes ends (``workers.verdict``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rinetd_run.status import MAX_BYTES, Outcome, Status, decode, encode, settled
from rinetd_run.workers import NO, YES, verdict

statuses = st.builds(
    Status,
    pid=st.integers(1, 2**22),
    began=st.integers(0, 10**6),
    ended=st.integers(0, 10**6),
    ok=st.booleans(),
    message=st.text(max_size=200),
)


@given(statuses)
def test_a_status_reads_back_as_written(status: Status) -> None:
    assert decode(encode(status)) == status
    assert len(encode(status)) < MAX_BYTES


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"pid": 1}',
        b'{"pid": -1, "began": 0, "ended": 0, "ok": true, "message": ""}',
        b'{"pid": 1.5, "began": 0, "ended": 0, "ok": true, "message": ""}',
        b'{"pid": true, "began": 0, "ended": 0, "ok": true, "message": ""}',
        b'{"pid": 1, "began": 0, "ended": 0, "ok": 1, "message": ""}',
        b'{"pid": 1, "began": 0, "ended": 0, "ok": true, "message": 5}',
        b'{"pid": 1, "began": 0, "ended": 0, "ok": true, "message": "", "x": 0}',
        b"1e999999",
    ],
)
def test_anything_else_is_not_a_status(data: bytes) -> None:
    assert decode(data) is None


def _status(pid: int, began: int, ended: int, ok: bool = True) -> Status:
    return Status(pid, began, ended, ok, f"after {ended}")


def test_the_reload_asked_for_is_the_first_to_begin_after_the_file_was_read() -> None:
    idle = _status(7, 3, 3)
    assert settled(7, idle, idle) is None  # nothing new yet
    assert settled(7, idle, _status(7, 4, 3)) is None  # ours began, not ended
    assert settled(7, idle, _status(7, 4, 4, ok=False)) == Outcome(False, "after 4")


def test_a_reload_under_way_when_asked_is_not_the_answer() -> None:
    # Reload 4 had begun before the request (and may have read the old file): the
    # request is reload 5, which a SIGHUP during 4 makes.
    busy = _status(7, 4, 3)
    assert settled(7, busy, _status(7, 4, 4)) is None
    assert settled(7, busy, _status(7, 5, 4)) is None
    assert settled(7, busy, _status(7, 5, 5)) == Outcome(True, "after 5")


def test_a_file_of_another_process_counts_as_no_reload_begun() -> None:
    stale = _status(6, 9, 9)
    assert settled(7, stale, _status(6, 10, 10)) is None  # still the other one's
    assert settled(7, stale, _status(7, 0, 0)) is None  # ours, started: no reload yet
    assert settled(7, None, _status(7, 1, 1)) == Outcome(True, "after 1")
    assert settled(7, _status(7, 2, 2), None) is None  # no file now


def test_a_round_is_taken_only_when_every_worker_can() -> None:
    assert verdict({10: YES, 11: YES}).ok
    refused = verdict({10: YES, 12: NO, 11: NO})
    assert not refused.ok and "worker pid 11, 12 could not apply it" in refused.message
    assert not verdict({}).ok


def test_the_encoding_is_one_json_line() -> None:
    data = encode(_status(1, 2, 2))
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data)["message"] == "after 2"
