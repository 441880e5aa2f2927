"""PROXY protocol headers, byte for byte, against haproxy's specification
(`doc/proxy-protocol.txt`) and a header haproxy itself wrote."""

from __future__ import annotations

import pytest

from rinetd_run.proxy import V2_SIGNATURE, header


def test_the_v2_signature_is_the_specification_s_twelve_bytes() -> None:
    assert bytes.fromhex("0D0A0D0A000D0A515549540A") == V2_SIGNATURE


@pytest.mark.parametrize(
    ("source", "destination", "expected"),
    [
        # The specification's longest lines, one per family.
        (
            ("255.255.255.255", 65535),
            ("255.255.255.255", 65535),
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
        ),
        (
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
            b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            b" ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
        ),
        (
            ("192.168.0.1", 56324),
            ("192.168.0.11", 443),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        ),
        (
            ("fd61:4::10", 40000),
            ("fd61:4::1", 8080),
            b"PROXY TCP6 fd61:4::10 fd61:4::1 40000 8080\r\n",
        ),
        # An IPv4 client of a `::` listener is its plain IPv4 self.
        (
            ("::ffff:10.61.4.10", 40000),
            ("::ffff:10.61.4.1", 80),
            b"PROXY TCP4 10.61.4.10 10.61.4.1 40000 80\r\n",
        ),
    ],
)
def test_v1_is_the_specification_s_line(
    source: tuple[str, int], destination: tuple[str, int], expected: bytes
) -> None:
    line = header("v1", source, destination)
    assert line == expected
    assert len(line) <= 107  # the specification's bound on a v1 header


def test_v2_ipv4_is_what_haproxy_writes() -> None:
    # haproxy's `send-proxy-v2` for 172.19.0.1:42578 -> 172.19.0.3:80, as captured.
    captured = bytes.fromhex("0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050")
    assert header("v2", ("172.19.0.1", 42578), ("172.19.0.3", 80)) == captured


def test_v2_ipv6_follows_the_specification_s_layout() -> None:
    found = header("v2", ("fd61:4::10", 40000), ("fd61:4::1", 8080))
    assert found[:12] == V2_SIGNATURE
    assert found[12] == 0x21  # version 2, PROXY
    assert found[13] == 0x21  # AF_INET6, STREAM
    assert int.from_bytes(found[14:16], "big") == 36 == len(found) - 16
    assert found[16:32] == bytes.fromhex("fd610004000000000000000000000010")
    assert found[32:48] == bytes.fromhex("fd610004000000000000000000000001")
    assert found[48:] == (40000).to_bytes(2, "big") + (8080).to_bytes(2, "big")


def test_v2_mapped_ipv4_is_tcp_over_ipv4() -> None:
    found = header("v2", ("::ffff:10.61.4.10", 40000), ("::ffff:10.61.4.1", 80))
    assert found[13] == 0x11 and len(found) == 16 + 12
