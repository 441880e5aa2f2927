"""How long a scrape storm pauses forwarding: the worst request latency through one rule
while 16 scrapers fetch /metrics over and over from a rinetd-run serving N rules whose
every rule has counts on the page, against the worst while nobody scrapes.

Run: .venv/bin/python bench/scrape_latency.py [--rules N] [--seconds S]
Loopback only; every phase is bounded in time, the scrapers in count.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from reload_latency import HOST, _compile, _echo_server, _latencies, _ports, _started


def _scrape(port: int) -> int:
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        size = 0
        while data := sock.recv(65536):
            size += len(data)
        return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5.0)
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rinetdc-scrape-"))
    server, backend = _echo_server()
    metrics, front, *others = _ports(arguments.rules + 1)
    rules = [f"{HOST} {front} {HOST} {backend}"] + [f"{HOST} {p} {HOST} 9" for p in others]
    # Each other rule denies 127.0.0.2, so one refused connection gives it samples.
    text = "\n".join(f"{rule}\ndeny 127.0.0.2" for rule in rules[1:])
    _compile(f"metrics {HOST} {metrics}\n{rules[0]}\n{text}\n", work)
    forwarder = _started(work / "r.json")
    try:
        for port in others:
            with socket.socket() as sock:
                sock.bind(("127.0.0.2", 0))
                with contextlib.suppress(OSError):
                    sock.connect((HOST, port))
                    sock.recv(1)
        size = _scrape(metrics)
        with socket.create_connection((HOST, front)) as sock:
            quiet = _latencies(sock, arguments.seconds)
            stop = time.monotonic() + arguments.seconds
            scrapes = [0]

            def scraper() -> None:
                while time.monotonic() < stop:
                    _scrape(metrics)
                    scrapes[0] += 1

            threads = [threading.Thread(target=scraper) for _ in range(16)]
            for thread in threads:
                thread.start()
            storm = _latencies(sock, arguments.seconds)
            for thread in threads:
                thread.join()
        p99 = [statistics.quantiles(found, n=100)[98] * 1e3 for found in (quiet, storm)]
        print(
            f"{arguments.rules} rules, a page of {size / 1e6:.1f} MB: request latency quiet "
            f"p99 {p99[0]:.2f} ms max {max(quiet) * 1e3:.1f} ms; during {scrapes[0]} scrapes "
            f"by 16 scrapers p99 {p99[1]:.2f} ms max {max(storm) * 1e3:.1f} ms"
        )
    finally:
        forwarder.terminate()
        forwarder.wait(timeout=30)
        server.close()


if __name__ == "__main__":
    main()
