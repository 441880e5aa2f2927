"""``Link`` in-process, with fake ends: half-close, who closed first, counts, back-pressure.

As h11 tests its state machine without sockets: the link only calls its ends
and is called through the ``Sink`` it gives them, so every path is driven
here by hand and the log events it writes are the observable result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rinetd_run.link import Link, Sink
from rinetd_run.logline import Event
from rinetd_run.ruleset import Endpoint, Rule


@dataclass
class FakeEnd:
    streams: bool = True
    written: list[bytes] = field(default_factory=list)
    eof_sent: bool = False
    state: str = "open"  # open, closed, aborted
    reading: bool = False
    sink: Sink | None = None
    paired_with: object = None

    def serve(self, sink: Sink) -> None:
        self.sink = sink
        self.reading = True

    def pair(self, other: object) -> None:
        self.paired_with = other

    def write(self, data: bytes | memoryview) -> None:
        self.written.append(bytes(data))

    def write_eof(self) -> None:
        self.eof_sent = True

    def close(self) -> None:
        self.state = "closed"

    def abort(self) -> None:
        self.state = "aborted"

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


RULE = Rule(
    line=3,
    bind=Endpoint("0", "0.0.0.0", 80, "http", "tcp"),
    connect=Endpoint("backend", "10.0.0.2", 8080, None, "tcp"),
    timeout=72,
    src=None,
    access=(),
)


def _link(client: FakeEnd | None = None) -> tuple[Link, FakeEnd, list[Event]]:
    events: list[Event] = []
    link = Link(RULE, "10.1.1.1", events.append)
    client = client or FakeEnd()
    link.opened(client)
    return link, client, events


def _connected(client: FakeEnd | None = None) -> tuple[Link, FakeEnd, FakeEnd, list[Event]]:
    link, client, events = _link(client)
    backend = FakeEnd()
    link.backend_ready(backend)
    return link, client, backend, events


def _sink(end: FakeEnd) -> Sink:
    assert end.sink is not None
    return end.sink


def test_opened_is_logged_and_both_ends_are_wired_and_paired() -> None:
    _link, client, backend, events = _connected()
    assert [e.result for e in events] == ["opened"]
    assert events[0][:5] == ("10.1.1.1", "0", 80, "backend", 8080)  # hosts as written
    assert client.reading and backend.reading
    assert client.paired_with is backend


def test_client_eof_is_a_half_close_not_a_close() -> None:
    link, client, backend, events = _connected()
    _sink(client).data(b"question")
    _sink(client).eof()
    assert backend.eof_sent and backend.state == "open" and client.state == "open"
    assert not link.finished
    _sink(backend).data(b"answer after EOF")  # the other direction still flows
    assert client.written == [b"answer after EOF"]
    _sink(backend).eof()
    assert link.finished and client.state == backend.state == "closed"
    assert events[-1].result == "done-remote-closed"  # the client closed first


def test_backend_eof_first_is_done_local_closed() -> None:
    link, client, backend, events = _connected()
    _sink(backend).eof()
    assert client.eof_sent and not link.finished
    _sink(client).eof()
    assert events[-1].result == "done-local-closed"


def test_byte_counts_by_direction_including_spliced_bytes() -> None:
    _link, client, backend, events = _connected()
    _sink(client).data(b"12345")
    _sink(client).moved(100)
    _sink(backend).data(b"1234567")
    _sink(backend).moved(1000)
    _sink(client).lost()
    last = events[-1]
    assert (last.bytes_from_client, last.bytes_to_client) == (105, 1007)
    assert backend.written == [b"12345"] and client.written == [b"1234567"]


def test_a_reset_aborts_both_ends_unless_that_side_had_sent_eof() -> None:
    _link, client, backend, events = _connected()
    _sink(backend).lost()
    assert (client.state, backend.state) == ("aborted", "aborted")
    assert events[-1].result == "done-local-closed"
    _link, client, backend, events = _connected()
    _sink(client).eof()
    _sink(client).lost()
    assert client.state == "closed"
    assert events[-1].result == "done-remote-closed"


def test_client_bytes_wait_for_the_backend_and_pause_the_client_past_the_limit() -> None:
    link, client, _events = _link()
    _sink(client).data(b"a" * (Link.PENDING_LIMIT - 1))
    assert client.reading
    _sink(client).data(b"b")
    assert not client.reading
    _sink(client).eof()
    backend = FakeEnd()
    link.backend_ready(backend)
    assert b"".join(backend.written) == b"a" * (Link.PENDING_LIMIT - 1) + b"b"
    assert client.reading and backend.eof_sent  # resumed, and the early EOF passed on


def test_back_pressure_pauses_and_resumes_the_other_side() -> None:
    _link, client, backend, _events = _connected()
    _sink(client).full()  # the client cannot take more: stop reading the backend
    assert not backend.reading and client.reading
    _sink(client).drained()
    assert backend.reading
    _sink(backend).full()
    assert not client.reading
    _sink(backend).drained()
    assert client.reading


def test_unreachable_backend_is_opened_then_done_local_closed() -> None:
    link, client, events = _link()
    _sink(client).data(b"request")
    _sink(client).eof()  # even when the client has already sent its EOF (as 0.73)
    link.backend_failed()
    assert [e.result for e in events] == ["opened", "done-local-closed"]
    assert client.state == "closed"


def test_a_client_gone_with_nothing_sent_abandons_the_connect() -> None:
    link, client, events = _link()
    abandoned: list[bool] = []
    link.on_abandon = lambda: abandoned.append(True)
    _sink(client).eof()
    assert abandoned == [True] and link.finished
    assert [e.result for e in events] == ["opened", "done-remote-closed"]


def test_a_backend_that_connects_after_the_end_is_closed_at_once() -> None:
    link, _client, events = _link()
    link.finish(abort=True)
    backend = FakeEnd()
    link.backend_ready(backend)
    assert backend.state == "closed" and backend.sink is None
    assert [e.result for e in events] == ["opened", "done-remote-closed"]


def test_a_datagram_side_ends_the_link_at_the_other_side_eof() -> None:
    link, client, events = _link(FakeEnd(streams=True))
    backend = FakeEnd(streams=False)
    link.backend_ready(backend)
    _sink(client).eof()
    assert link.finished and events[-1].result == "done-remote-closed"


def test_expired_udp_session_and_finish_once() -> None:
    link, _client, _backend, events = _connected(FakeEnd(streams=False))
    traffic: list[int] = []
    link.on_traffic = lambda: traffic.append(1)
    link.touch()
    assert traffic == [1]
    link.session_ended()
    link.finish(abort=True, result="never written")
    assert [e.result for e in events] == ["opened", "done-remote-closed"]


def test_finish_reports_to_its_owner_and_drops_a_connect_under_way() -> None:
    link, _client, events = _link()
    calls: list[str] = []
    link.on_abandon = lambda: calls.append("abandon")
    link.on_finish = lambda done: calls.append("finish")
    link.finish(abort=False, result="local-socket-failed -")
    assert calls == ["abandon", "finish"]
    assert events[-1].result == "local-socket-failed -"
