"""The PROXY protocol header a backend gets before the client's bytes (haproxy's
`proxy-protocol.txt`, versions 1 and 2).  Pure functions.

Version 1 is a line of text (``PROXY TCP4 client server cport sport\\r\\n``),
version 2 a binary block (signature, version and command, family, addresses,
ports).  The source is the client, the destination the address and port it
connected to.  An IPv4 client of a ``::`` listener is written as its plain IPv4
address (TCP4), as the backend would see it without a forwarder.
"""

from __future__ import annotations

import ipaddress
import struct

__all__ = ["V2_SIGNATURE", "header"]

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_PROXY = 0x21  # version 2, command PROXY
_V2_TCP4, _V2_TCP6 = 0x11, 0x21  # AF_INET / AF_INET6 with STREAM


def _plain(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def header(version: str, source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """The header of ``version`` ("v1" or "v2") for a TCP connection from ``source`` to
    ``destination``, each a numeric address and a port."""
    src, dst = _plain(source[0]), _plain(destination[0])
    if src.version != dst.version:  # an IPv4 client reached an IPv6 address: say IPv6
        src = ipaddress.IPv6Address(f"::ffff:{src}") if src.version == 4 else src
        dst = ipaddress.IPv6Address(f"::ffff:{dst}") if dst.version == 4 else dst
    if version == "v1":
        protocol = "TCP4" if src.version == 4 else "TCP6"
        return f"PROXY {protocol} {src} {dst} {source[1]} {destination[1]}\r\n".encode("ascii")
    family = _V2_TCP4 if src.version == 4 else _V2_TCP6
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + struct.pack("!BBH", _V2_PROXY, family, len(body)) + body
