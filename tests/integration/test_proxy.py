"""PROXY protocol toward real receivers: nginx (`listen ... proxy_protocol`) and haproxy
(`bind ... accept-proxy`) from Debian, on the backend host, behind rinetd-run on the
firewall; each answers with the client address and port the header gave it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import wait_tcp
from tests.integration.daemons import Daemon, agent, start_ours
from tests.integration.topology import Topology

NGINX, HAPROXY = 9080, 9081  # on the backend, both expecting the PROXY header
C1_FW, C1_FW6 = "10.61.4.1", "fd61:4::1"

# The backend configurations the README shows, as the tests run them.
NGINX_CONF = """\
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{}}
http {{
    access_log {work}/nginx-access.log;
    client_body_temp_path {work}/nginx-body;
    server {{
        listen {port} proxy_protocol;
        listen [::]:{port} proxy_protocol;
        location / {{
            return 200 "$proxy_protocol_addr $proxy_protocol_port\\n";
        }}
    }}
}}
"""

HAPROXY_CONF = """\
global
    maxconn 200
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend proxied
    bind 0.0.0.0:{port} accept-proxy
    bind :::{port} v6only accept-proxy
    http-request return status 200 content-type text/plain lf-string "%ci %cp\\n"
"""

# port on the firewall -> (backend port, option); IPv6 clients use the :: binds.
RULES = {
    9180: (NGINX, "v1"),
    9280: (NGINX, "v2"),
    9181: (HAPROXY, "v1"),
    9281: (HAPROXY, "v2"),
    9380: (NGINX, None),
    9381: (HAPROXY, None),
}


def _config() -> str:
    lines = []
    for port, (backend, version) in RULES.items():
        option = f" [proxy-protocol={version}]" if version else ""
        lines.append(f"0.0.0.0 {port} 10.62.0.2 {backend}{option}")
        lines.append(f"fd61:4::1 {port + 1000} fd62::2 {backend}{option}")
    return "\n".join(lines) + "\nlogfile LOG\n"


@pytest.fixture(scope="module")
def receivers(net: Topology) -> Iterator[Topology]:
    for program in ("nginx", "haproxy"):
        if shutil.which(program) is None and not Path(f"/usr/sbin/{program}").exists():
            pytest.fail(f"{program} is missing: ./test.sh as root installs it")
    work = Path(tempfile.mkdtemp(prefix="receivers-", dir=net.workdir))  # see test_dns
    (work / "nginx.conf").write_text(NGINX_CONF.format(work=work, port=NGINX))
    (work / "haproxy.cfg").write_text(HAPROXY_CONF.format(port=HAPROXY))
    started = [
        net.spawn(
            "be",
            ["/usr/sbin/nginx", "-c", str(work / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        net.spawn(
            "be",
            ["/usr/sbin/haproxy", "-db", "-f", str(work / "haproxy.cfg")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        for port in (NGINX, HAPROXY):
            wait_tcp(net, "fw", "10.62.0.2", port)
        yield net
    finally:
        for process in started:
            net.stop(process)


@pytest.fixture(scope="module")
def forwarder(receivers: Topology) -> Iterator[Daemon]:
    daemon = start_ours(receivers, _config(), "proxy-protocol")
    yield daemon
    daemon.stop()


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize("port", [p for p, (_b, v) in RULES.items() if v])
def test_the_backend_sees_the_client_s_address_and_port(
    receivers: Topology, forwarder: Daemon, family: str, port: int
) -> None:
    client = receivers.hosts["c1"]
    host, bind = (C1_FW, port) if family == "ipv4" else (C1_FW6, port + 1000)
    found = agent(receivers, "c1", "http-body", "--host", host, "--port", str(bind))
    assert found["error"] is None and found["status"] == 200, found
    address = client.ipv4 if family == "ipv4" else client.ipv6
    assert found["body"].split() == [address, str(found["port"])]


@pytest.mark.parametrize("port", [p for p, (_b, v) in RULES.items() if not v])
def test_without_the_option_a_proxy_expecting_backend_refuses(
    receivers: Topology, forwarder: Daemon, port: int
) -> None:
    """The header is what makes it work: the same request without it is refused."""
    found = agent(receivers, "c1", "http-body", "--host", C1_FW, "--port", str(port))
    assert found.get("status") != 200, found
