"""The deadline sweep without a loop or a clock: links with fake ends, and the time given."""

from __future__ import annotations

from rinetd_run.deadlines import Deadlines
from tests.unit.runtime.test_link import FakeEnd, _connected, _link, _sink


def test_a_connect_is_given_up_at_its_deadline_not_before() -> None:
    deadlines = Deadlines()
    link, _client, _events = _link()
    deadlines.connect_started(link, 30, now=100.0)
    assert deadlines.sweep(129.9) == ([], [])
    assert deadlines.sweep(130.0).connects == [link]
    assert not deadlines.watching  # given up once, then forgotten
    assert deadlines.sweep(500.0) == ([], [])


def test_a_connect_that_finished_or_ended_is_let_go() -> None:
    deadlines = Deadlines()
    connected, _client, _backend, _events = _connected()
    deadlines.connect_started(connected, 1, now=0.0)
    ended, _client, _events = _link()
    deadlines.connect_started(ended, 1, now=0.0)
    deadlines.connect_ended(ended)
    assert deadlines.sweep(5.0) == ([], [])
    assert not deadlines.watching


def test_idle_means_no_byte_either_way_for_the_whole_timeout() -> None:
    deadlines = Deadlines()
    link, client, backend, _events = _connected()
    deadlines.watch_idle(link, 10, now=0.0)
    assert deadlines.sweep(1.0) == ([], [])  # the first sweep notes the counts
    _sink(client).data(b"x")  # traffic at 5 s restarts the clock
    assert deadlines.sweep(5.0) == ([], [])
    assert deadlines.sweep(14.9) == ([], [])
    _sink(backend).data(b"y")  # the other direction counts too
    assert deadlines.sweep(15.0) == ([], [])
    assert deadlines.sweep(24.9) == ([], [])
    assert deadlines.sweep(25.0).idle == [link]
    assert not deadlines.watching


def test_a_finished_or_forgotten_link_is_never_ended_as_idle() -> None:
    deadlines = Deadlines()
    finished, client, _backend, _events = _connected()
    deadlines.watch_idle(finished, 1, now=0.0)
    _sink(client).eof()
    finished.finish(abort=False)
    forgotten, _client, _backend, _events = _connected(FakeEnd())
    deadlines.watch_idle(forgotten, 1, now=0.0)
    deadlines.forget(forgotten)
    assert deadlines.sweep(0.5) == ([], [])
    assert deadlines.sweep(100.0) == ([], [])
    assert not deadlines.watching
