"""The Prometheus endpoint of a real rinetd-run on loopback: its page read by the official
client library's parser and by Debian's promtool, counters that match the traffic sent,
bounds on what a scraper may do, and the endpoint across SIGHUP and --workers."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import compile_config, wait_until
from tests.runtime.harness import (
    TcpEcho,
    UdpEcho,
    connect_from,
    free_port,
    recv_all,
    running,
    start_forwarder,
)


def _get(port: int, request: bytes = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return recv_all(sock)


def _page(port: int) -> str:
    answer = _get(port)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"Content-Type: text/plain; version=0.0.4" in head
    return body.decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    total = 0.0
    for (found, pairs), value in samples.items():
        if found == name and all((k, v) in pairs for k, v in labels.items()):
            total += value
    return total


def _echo(port: int, payload: bytes, source: str = "127.0.0.1") -> None:
    with connect_from(source, port) as client:
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        assert recv_all(client) == payload


def test_counters_match_the_traffic_and_rise_between_scrapes(
    tcp_echo: TcpEcho, udp_echo: UdpEcho, tmp_path: Path
) -> None:
    tcp, udp, metrics = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    conf = (
        f"metrics 127.0.0.1 {metrics}\n"
        f"127.0.0.1 {tcp} 127.0.0.1 {tcp_echo.port}\n"
        "deny 127.0.0.9\n"
        f"127.0.0.1 {udp}/udp 127.0.0.1 {udp_echo.port}/udp\n"
        "logfile LOG\n"
    )
    with running(conf, tmp_path) as fw:
        for _ in range(3):
            _echo(tcp, b"x" * 1000)
        denied = connect_from("127.0.0.9", tcp)
        assert recv_all(denied) == b""
        denied.close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"ping", ("127.0.0.1", udp))
            assert client.recv(16) == b"ping"
            fw.log_lines(6)
            first = _samples(_page(metrics))
        rule = {"bind": "127.0.0.1", "port": str(tcp), "protocol": "tcp", "line": "2"}
        total = "rinetd_run_connections_total"
        assert _value(first, total, result="opened", **rule) == 3
        assert _value(first, total, result="done-remote-closed", **rule) == 3
        assert _value(first, total, result="denied", **rule) == 1
        assert _value(first, "rinetd_run_connections_open", **rule) == 0
        assert _value(first, "rinetd_run_client_bytes_total", **rule) == 3000
        assert _value(first, "rinetd_run_backend_bytes_total", **rule) == 3000
        assert _value(first, "rinetd_run_udp_sessions_open", port=str(udp)) == 1
        assert _value(first, "rinetd_run_reloads_total", result="done") == 0
        assert _value(first, "rinetd_run_ruleset_info") == 1
        assert _value(first, "process_open_fds") > 0 and _value(first, "process_max_fds") > 0
        assert _value(first, "process_resident_memory_bytes") > 1_000_000
        assert abs(_value(first, "process_start_time_seconds") - time.time()) < 300
        _echo(tcp, b"y" * 500)
        fw.log_lines(8)

        # A page is served again for as long as it took to write (README): under load a
        # scrape right after the first may still get it, so ask until the new one comes.
        def risen() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            page = _samples(_page(metrics))
            return page if _value(page, total, result="opened", **rule) != 3 else None

        second = wait_until(risen, "a page written after the fourth connection", 5)
        assert _value(second, total, result="opened", **rule) == 4
        assert _value(second, "rinetd_run_client_bytes_total", **rule) == 3500
        assert _value(second, "process_cpu_seconds_total") >= _value(
            first, "process_cpu_seconds_total"
        )


def test_promtool_accepts_the_page(tcp_echo: TcpEcho, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: ./test.sh as root installs it (Debian's prometheus)")
    tcp, metrics = free_port(), free_port()
    conf = f"metrics 127.0.0.1 {metrics}\n127.0.0.1 {tcp} 127.0.0.1 {tcp_echo.port}\n"
    with running(conf, tmp_path):
        _echo(tcp, b"z" * 10)
        page = _page(metrics)
    done = subprocess.run(
        [promtool, "check", "metrics"], input=page, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == "", done.stdout + done.stderr  # not even a lint note


def test_only_get_metrics_is_served_and_scrapers_are_bounded(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    tcp, metrics = free_port(), free_port()
    conf = f"metrics 127.0.0.1 {metrics}\n127.0.0.1 {tcp} 127.0.0.1 {tcp_echo.port}\n"
    with running(conf, tmp_path):
        assert _get(metrics, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 ")
        answer = _get(metrics, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in answer
        assert _get(metrics, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        huge = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n"
        assert _get(metrics, huge) == b""  # over 8 KiB: closed, no answer
        slow = [socket.create_connection(("127.0.0.1", metrics)) for _ in range(40)]
        try:
            # 16 half-sent requests are waited for; each newer one took the place of the
            # oldest, which was closed at once; forwarding goes on meanwhile.
            started = time.monotonic()
            _echo(tcp, b"still forwarding")
            for sock in slow[:24]:
                sock.settimeout(5)
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(1) == b""
            assert time.monotonic() - started < 3
            slow[-1].settimeout(10)
            assert slow[-1].recv(1) == b""  # timed out after 5 s, not held for ever
            assert 3 < time.monotonic() - started < 9
        finally:
            for sock in slow:
                sock.close()
        assert _page(metrics)  # and scraping works again


def test_the_endpoint_is_kept_moved_and_counted_across_sighup(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    tcp, metrics, moved = free_port(), free_port(), free_port()
    text = "metrics 127.0.0.1 {port}\n127.0.0.1 " + f"{tcp} 127.0.0.1 {tcp_echo.port}\n"
    rules = compile_config(text.format(port=metrics), tmp_path)
    fw = start_forwarder(rules)
    try:
        before = _samples(_page(metrics))
        fw.signal(signal.SIGHUP)
        fw.wait_for_stderr("reloaded")
        kept = _samples(_page(metrics))
        assert _value(kept, "rinetd_run_reloads_total", result="done") == 1
        assert _value(kept, "rinetd_run_last_reload_success_timestamp_seconds") > _value(
            before, "rinetd_run_last_reload_success_timestamp_seconds"
        )
        compile_config(text.format(port=moved), tmp_path)
        fw.signal(signal.SIGHUP)
        fw.wait_for_stderr("reloaded", count=2)
        assert _value(_samples(_page(moved)), "rinetd_run_reloads_total", result="done") == 2
        with pytest.raises(OSError):
            _get(metrics)  # the old address is closed
        (tmp_path / "rules.json").write_text("broken")
        fw.signal(signal.SIGHUP)
        fw.wait_for_stderr("reload failed")
        assert _value(_samples(_page(moved)), "rinetd_run_reloads_total", result="failed") == 1
    finally:
        fw.stop()


def test_each_worker_serves_its_own_counts_on_its_own_port(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    tcp = free_port()
    metrics = free_port()
    while True:  # two free ports in a row
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", metrics + 1))
                break
            except OSError:
                metrics = free_port()
    conf = f"metrics 127.0.0.1 {metrics}\n127.0.0.1 {tcp} 127.0.0.1 {tcp_echo.port}\nlogfile LOG\n"
    fw = start_forwarder(compile_config(conf, tmp_path), workers=2)
    try:
        for _ in range(20):
            _echo(tcp, b"w")
        fw.log_lines(40)
        pages = [_samples(_page(port)) for port in (metrics, metrics + 1)]
        opened = [_value(p, "rinetd_run_connections_total", result="opened") for p in pages]
        assert sum(opened) == 20
    finally:
        fw.stop()


def test_real_scrapes_are_served_during_a_slowloris(tcp_echo: TcpEcho, tmp_path: Path) -> None:
    tcp, metrics = free_port(), free_port()
    conf = f"metrics 127.0.0.1 {metrics}\n127.0.0.1 {tcp} 127.0.0.1 {tcp_echo.port}\n"
    with running(conf, tmp_path):
        stop = time.monotonic() + 6

        def attacker() -> None:  # a half request, sent again whenever it is dropped
            while time.monotonic() < stop:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", metrics), timeout=1) as sock,
                ):
                    sock.sendall(b"GET /met")
                    sock.settimeout(max(stop - time.monotonic(), 0.1))
                    with contextlib.suppress(OSError):
                        sock.recv(1)

        attackers = [threading.Thread(target=attacker) for _ in range(20)]
        for thread in attackers:
            thread.start()
        time.sleep(0.5)
        answered = 0
        for _ in range(24):
            with contextlib.suppress(OSError, AssertionError):
                if b"rinetd_run_connections_total" in _get(metrics):
                    answered += 1
            time.sleep(0.1)
        for thread in attackers:
            thread.join()
    assert answered >= 20, f"{answered} of 24 scrapes answered"


def test_metrics_on_the_ipv6_wildcard_takes_ipv4_scrapers(
    tcp_echo: TcpEcho, tmp_path: Path
) -> None:
    metrics, tcp = free_port(host="::"), free_port()
    conf = f"metrics :: {metrics}\n127.0.0.1 {tcp} 127.0.0.1 {tcp_echo.port}\n"
    with running(conf, tmp_path):
        assert "rinetd_run_ruleset_info" in _page(metrics)  # over 127.0.0.1


def test_a_removed_udp_rule_s_sessions_stay_udp_sessions(
    tcp_echo: TcpEcho, udp_echo: UdpEcho, tmp_path: Path
) -> None:
    tcp, udp, metrics = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    head = f"metrics 127.0.0.1 {metrics}\n127.0.0.1 {tcp} 127.0.0.1 {tcp_echo.port}\n"
    udp_rule = f"127.0.0.1 {udp}/udp 127.0.0.1 {udp_echo.port}/udp [timeout=60]\n"
    rules = compile_config(head + udp_rule, tmp_path)
    fw = start_forwarder(rules)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"ping", ("127.0.0.1", udp))
            assert client.recv(16) == b"ping"
            compile_config(head, tmp_path)
            fw.signal(signal.SIGHUP)
            fw.wait_for_stderr("reloaded")
            page = _samples(_page(metrics))
        tcp_ports = {
            dict(labels).get("port")
            for name, labels in page
            if name == "rinetd_run_connections_open"
        }
        assert str(udp) not in tcp_ports
    finally:
        fw.stop()
