"""The metrics endpoint's decisions without sockets: what each request gets, and how the
counters follow log events."""

from __future__ import annotations

import pytest

from rinetd_run import logline
from rinetd_run.counters import Counters, ProcessFacts, exposition
from rinetd_run.metrics import respond


def _page() -> str:
    return "up 1\n"


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"200"),
        (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", b"200"),
        (b"HEAD /metrics HTTP/1.1\r\n\r\n", b"200"),
        (b"GET / HTTP/1.1\r\n\r\n", b"404"),
        (b"GET /metricsx HTTP/1.1\r\n\r\n", b"404"),
        (b"POST /metrics HTTP/1.1\r\n\r\n", b"405"),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", b"405"),
        (b"nonsense\r\n\r\n", b"400"),
        (b"GET /metrics SMTP\r\n\r\n", b"400"),
    ],
)
def test_only_get_and_head_of_metrics_are_served(request_head: bytes, status: bytes) -> None:
    answer = respond(request_head, _page)
    assert answer.split(b" ", 2)[1] == status
    head, _, body = answer.partition(b"\r\n\r\n")
    if request_head.startswith(b"HEAD"):
        assert body == b"" and b"Content-Length: 5" in head
    elif status == b"200":
        assert body == b"up 1\n"
    if status == b"405":
        assert b"Allow: GET, HEAD" in head


def test_counters_follow_a_connection_s_two_events() -> None:
    counters = Counters()
    opened = logline.Event("10.0.0.1", "0", 80, "b", 81, 0, 0, logline.OPENED, 4000, 3)
    done = opened._replace(result=logline.REMOTE_CLOSED, bytes_from_client=5, bytes_to_client=9)
    refused = opened._replace(result=logline.DENIED)
    counters.count(opened)
    assert counters.open[("0", 80, "tcp")] == 1
    counters.count(done)
    counters.count(refused)
    key = ("0", 80, "tcp")
    assert counters.open[key] == 0  # a denied client never opened, so it closes nothing
    assert (counters.bytes_from_client[key], counters.bytes_to_client[key]) == (5, 9)
    page = exposition(counters, ProcessFacts(1.5, 7, 1024, (4096, 2048), 1.0e9))
    assert (
        'rinetd_run_connections_total{bind="0",port="80",protocol="tcp",line="",result="denied"} 1'
        in page
    )


def test_the_process_facts_are_on_the_page_and_what_proc_could_not_say_is_left_out() -> None:
    known = exposition(Counters(), ProcessFacts(1.5, 7, 1024, (4096, 2048), 1.0e9))
    assert "\nprocess_open_fds 7\n" in known and "\nprocess_max_fds 1024\n" in known
    assert "\nprocess_resident_memory_bytes 2048\n" in known
    assert "\nprocess_start_time_seconds 1000000000.0\n" in known
    unknown = exposition(Counters(), ProcessFacts(1.5, None, 1024, None, None))
    assert "process_open_fds" not in unknown and "process_resident_memory" not in unknown
    assert "process_start_time" not in unknown and "\nprocess_cpu_seconds_total 1.5\n" in unknown


def test_the_page_says_how_many_rules_the_kernel_forwards_and_its_lost_events() -> None:
    counters = Counters(kernel_rules=3, kernel_events_lost=41)
    page = exposition(counters, ProcessFacts(1.0, None, 1024, None, None))
    assert "\nrinetd_run_kernel_rules 3\n" in page
    assert "# TYPE rinetd_run_kernel_events_lost_total counter\n" in page
    assert "\nrinetd_run_kernel_events_lost_total 41\n" in page


def test_the_kernel_s_per_rule_counters_are_on_the_page_with_the_rule_s_labels() -> None:
    key = ("0", 8120, "tcp")
    counters = Counters(lines={key: 5}, kernel_traffic=[(key, 12, 960)])
    page = exposition(counters, ProcessFacts(1.0, None, 1024, None, None))
    labels = '{bind="0",port="8120",protocol="tcp",line="5"}'
    assert f"\nrinetd_run_kernel_packets_total{labels} 12\n" in page
    assert f"\nrinetd_run_kernel_bytes_total{labels} 960\n" in page
    assert "# TYPE rinetd_run_kernel_bytes_total counter\n" in page
