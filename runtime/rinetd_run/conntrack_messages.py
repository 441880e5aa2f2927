"""Conntrack's netlink messages (ctnetlink), read and written: the events of the flows
the kernel data plane forwards, and the request for one flow's counters.  Pure.

A flow is what conntrack calls a connection: its original tuple is the client's
packet as it arrived (client address and port to the bind), its reply tuple what the
backend sends back.  The layout is the kernel's (``linux/netfilter/nfnetlink_conntrack.h``):
a netlink header, a 4-byte ``nfgenmsg``, then attributes, some nested; integers in
attributes are big-endian.  Anything malformed ends the reading of its message, never
raises.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import NamedTuple

__all__ = [
    "DESTROY",
    "GROUPS",
    "NEW",
    "UPDATE",
    "Flow",
    "answer",
    "counters_request",
    "flows",
]

NEW, UPDATE, DESTROY = "new", "update", "destroy"
GROUPS = 0b111  # NFNLGRP_CONNTRACK_NEW, _UPDATE and _DESTROY, as a bind() group mask
TCP, UDP = 6, 17

# TCP states (enum tcp_conntrack) that mean the connection is over: both FINs seen and
# acknowledged, or a reset.
TIME_WAIT, CLOSE = 7, 8
_CLOSE_INIT = 0x04  # IP_CT_TCP_FLAG_CLOSE_INIT: this side sent the first FIN

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_ATTRIBUTE = struct.Struct("=HH")
_SUBSYSTEM = 1 << 8  # NFNL_SUBSYS_CTNETLINK
_MSG_NEW, _MSG_GET, _MSG_DELETE = 0, 1, 2
_NLMSG_ERROR = 2
_F_REQUEST, _F_CREATE = 0x1, 0x400
_NESTED, _TYPE_MASK = 0x8000, 0x3FFF

# Attribute numbers.
_TUPLE_ORIG, _TUPLE_REPLY, _PROTOINFO, _TIMEOUT, _MARK, _COUNTERS_ORIG, _COUNTERS_REPLY, _ID = (
    1, 2, 4, 7, 8, 9, 10, 12,
)  # fmt: skip
_TUPLE_IP, _TUPLE_PROTO = 1, 2
_IP: dict[int, tuple[int, int]] = {
    socket.AF_INET: (1, 2),
    socket.AF_INET6: (3, 4),
}  # CTA_IP_V4_SRC/DST, V6_SRC/DST
_PROTO_NUM, _PROTO_SRC_PORT, _PROTO_DST_PORT = 1, 2, 3
_COUNTERS_BYTES = 2
_PROTOINFO_TCP, _TCP_STATE, _TCP_FLAGS_ORIG, _TCP_FLAGS_REPLY = 1, 1, 4, 5


class Flow(NamedTuple):
    """One conntrack message about a flow, as far as it tells."""

    kind: str  # NEW, UPDATE or DESTROY
    id: int  # conntrack's id: unique among the flows alive at one time
    mark: int
    family: int  # socket.AF_INET or AF_INET6
    protocol: int  # 6 (TCP) or 17 (UDP)
    client: str
    client_port: int
    bind: str  # the address the client's packets were sent to
    bind_port: int
    bytes_from_client: int | None  # IP-level bytes, when the message counts them
    bytes_to_client: int | None
    state: int | None  # TCP's conntrack state, when the message says it
    closed_first: str | None  # "client" or "backend": who sent the first FIN, if known
    timeout: int | None = None  # seconds before conntrack forgets it, when said

    @property
    def ended(self) -> bool:
        """A TCP flow that is over, though conntrack keeps its entry a while."""
        return self.state in (TIME_WAIT, CLOSE)


def _table(data: bytes) -> dict[int, bytes]:
    """The attributes of one level, by type (a loop, not a generator: this runs about
    twenty times for each message the log reads)."""
    found = {}
    offset, end = 0, len(data)
    unpack = _ATTRIBUTE.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4 or offset + length > end:
            break
        found[kind & _TYPE_MASK] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def _number(data: bytes | None) -> int | None:
    return int.from_bytes(data, "big") if data else None


def _tuple(data: bytes, family: int) -> tuple[str, int, str, int, int] | None:
    """(source, source port, destination, destination port, protocol) of a tuple."""
    parts = _table(data)
    addresses, ports = _table(parts.get(_TUPLE_IP, b"")), _table(parts.get(_TUPLE_PROTO, b""))
    source_key, destination_key = _IP[family]
    source, destination = addresses.get(source_key), addresses.get(destination_key)
    protocol = ports.get(_PROTO_NUM)
    source_port, destination_port = ports.get(_PROTO_SRC_PORT), ports.get(_PROTO_DST_PORT)
    if not (source and destination and protocol and source_port and destination_port):
        return None
    try:
        return (
            socket.inet_ntop(family, source),
            int.from_bytes(source_port, "big"),
            socket.inet_ntop(family, destination),
            int.from_bytes(destination_port, "big"),
            protocol[0],
        )
    except ValueError:  # an address of the wrong length
        return None


def _closed_first(protoinfo: bytes | None) -> tuple[int | None, str | None]:
    if not protoinfo:
        return None, None
    tcp = _table(_table(protoinfo).get(_PROTOINFO_TCP, b""))
    state = _number(tcp.get(_TCP_STATE))
    for key, side in ((_TCP_FLAGS_ORIG, "client"), (_TCP_FLAGS_REPLY, "backend")):
        flags = tcp.get(key)
        if flags and flags[0] & _CLOSE_INIT:
            return state, side
    return state, None


def _bytes(counters: bytes | None) -> int | None:
    return _number(_table(counters).get(_COUNTERS_BYTES)) if counters else None


def _flow(kind: str, family: int, body: bytes, ours: tuple[int, int] | None) -> Flow | None:
    if family not in _IP:
        return None
    parts = _table(body)
    mark = _number(parts.get(_MARK)) or 0
    state, closed_first = _closed_first(parts.get(_PROTOINFO))
    if ours is not None and (
        mark & ours[1] != ours[0] or (kind == UPDATE and state not in (TIME_WAIT, CLOSE))
    ):
        return None  # before the costly part: most events of a busy host are not ours
    original = _tuple(parts.get(_TUPLE_ORIG, b""), family)
    if original is None:
        return None
    client, client_port, bind, bind_port, protocol = original
    return Flow(
        kind=kind,
        id=_number(parts.get(_ID)) or 0,
        mark=mark,
        family=family,
        protocol=protocol,
        client=client,
        client_port=client_port,
        bind=bind,
        bind_port=bind_port,
        bytes_from_client=_bytes(parts.get(_COUNTERS_ORIG)),
        bytes_to_client=_bytes(parts.get(_COUNTERS_REPLY)),
        state=state,
        closed_first=closed_first,
        timeout=_number(parts.get(_TIMEOUT)),
    )


def _messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, flags, payload) of each netlink message in a datagram."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, flags, _, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            return
        yield kind, flags, data[offset + _HEADER.size : offset + length]
        offset += (length + 3) & ~3


def flows(data: bytes, ours: tuple[int, int] | None = None) -> list[Flow]:
    """The flows a datagram from conntrack's event groups tells of; with ``ours`` (a
    mark and its mask), only flows with that mark, and of their updates only those
    that end a TCP flow (what the log reads)."""
    found = []
    for kind, flags, payload in _messages(data):
        if kind >> 8 != _SUBSYSTEM >> 8 or len(payload) < 4:
            continue
        if kind & 0xFF == _MSG_DELETE:
            what = DESTROY
        elif kind & 0xFF == _MSG_NEW:
            what = NEW if flags & _F_CREATE else UPDATE
        else:
            continue
        flow = _flow(what, payload[0], payload[4:], ours)
        if flow is not None:
            found.append(flow)
    return found


def _attribute(kind: int, payload: bytes, nested: bool = False) -> bytes:
    length = _ATTRIBUTE.size + len(payload)
    head = _ATTRIBUTE.pack(length, kind | (_NESTED if nested else 0))
    return head + payload + b"\0" * (-length % 4)


def counters_request(flow: Flow, sequence: int) -> bytes:
    """A request for ``flow``'s entry as it is now (with its counters), found by its
    original tuple."""
    source_key, destination_key = _IP[flow.family]
    addresses = _attribute(source_key, socket.inet_pton(flow.family, flow.client))
    addresses += _attribute(destination_key, socket.inet_pton(flow.family, flow.bind))
    ports = _attribute(_PROTO_NUM, bytes([flow.protocol]))
    ports += _attribute(_PROTO_SRC_PORT, flow.client_port.to_bytes(2, "big"))
    ports += _attribute(_PROTO_DST_PORT, flow.bind_port.to_bytes(2, "big"))
    original = _attribute(_TUPLE_IP, addresses, True) + _attribute(_TUPLE_PROTO, ports, True)
    body = struct.pack("=BBH", flow.family, 0, 0) + _attribute(_TUPLE_ORIG, original, True)
    return _HEADER.pack(
        _HEADER.size + len(body), _SUBSYSTEM | _MSG_GET, _F_REQUEST, sequence, 0
    ) + (body)


def answer(data: bytes) -> Flow | None:
    """The flow a reply to ``counters_request`` holds; None for an error (the entry is
    gone) or anything else."""
    for kind, _, payload in _messages(data):
        if kind == _NLMSG_ERROR or kind != _SUBSYSTEM | _MSG_NEW or len(payload) < 4:
            return None
        return _flow(UPDATE, payload[0], payload[4:], None)
    return None
