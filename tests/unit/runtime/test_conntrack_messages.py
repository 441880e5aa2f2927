"""``conntrack_messages``: ctnetlink read from bytes the kernel sent (captured from a
real answer in a namespace) and from anything at all (never raises)."""

from __future__ import annotations

import socket

from hypothesis import given
from hypothesis import strategies as st

from rinetd_run.conntrack_messages import (
    DESTROY,
    NEW,
    UPDATE,
    Flow,
    answer,
    counters_request,
    flows,
)

# The kernel's answer to a counters request for a TCP flow 10.90.1.2:52130 -> 10.90.1.1:80
# DNAT'd to 10.90.2.2:8080, in TIME_WAIT, the client having sent the first FIN, with
# mark 0x52520007 and accounting on (6 packets, 1320 bytes from the client; 4, 1216 back).
KERNEL_ANSWER = bytes.fromhex(
    "0c010000000100000000000000000000"  # nlmsghdr as the kernel wrote it (length 268)
    "020000003400018014000180080001000a5a0102080002000a5a01011c0002800500010006000000"
    "06000200cba2000006000300005000003400028014000180080001000a5a0202080002000a5a0201"
    "1c0002800500010006000000060002001f90000006000300cba2000008000300000001be08000800"
    "5252000708000c00c40ac94408000b00000000020800070000000076300004802c00018005000100"
    "07000000050002000a000000050003000a000000060004002700000006000500230000001c000980"
    "0c00010000000000000000060c00020000000000000005281c000a800c0001000000000000000004"
    "0c00020000000000000004c0"
)


def test_the_kernel_s_answer_reads_as_the_flow_it_is() -> None:
    flow = answer(KERNEL_ANSWER)
    assert flow is not None
    assert (flow.client, flow.client_port, flow.bind, flow.bind_port) == (
        "10.90.1.2", 52130, "10.90.1.1", 80,
    )  # fmt: skip
    assert (flow.protocol, flow.family, flow.mark) == (6, socket.AF_INET, 0x52520007)
    assert (flow.bytes_from_client, flow.bytes_to_client) == (1320, 1216)
    assert flow.ended and flow.closed_first == "client"
    assert flow.id == 0xC40AC944
    assert flow.timeout == 118  # of TIME_WAIT's 120 s


def test_the_same_message_as_an_event_has_its_kind_from_type_and_flags() -> None:
    as_update = bytearray(KERNEL_ANSWER)
    as_update[4:6] = (0x100).to_bytes(2, "little")  # IPCTNL_MSG_CT_NEW, no NLM_F_CREATE
    as_new = bytearray(as_update)
    as_new[6:8] = (0x600).to_bytes(2, "little")  # NLM_F_CREATE | NLM_F_EXCL
    as_destroy = bytearray(as_update)
    as_destroy[4:6] = (0x102).to_bytes(2, "little")
    kinds = [flows(bytes(data))[0].kind for data in (as_update, as_new, as_destroy)]
    assert kinds == [UPDATE, NEW, DESTROY]
    # Two messages in one datagram are two flows.
    assert len(flows(bytes(as_new) + bytes(as_destroy))) == 2


def test_an_error_answer_is_no_flow() -> None:
    error = (36).to_bytes(4, "little") + (2).to_bytes(2, "little") + bytes(30)
    assert answer(error) is None
    assert answer(b"") is None


def test_a_request_names_the_flow_by_its_original_tuple() -> None:
    flow = answer(KERNEL_ANSWER)
    assert flow is not None
    request = counters_request(flow, 7)
    assert int.from_bytes(request[:4], "little") == len(request)
    assert request[4:6] == (0x101).to_bytes(2, "little")  # IPCTNL_MSG_CT_GET
    # The original tuple, byte for byte as the kernel writes it in its answer.
    assert KERNEL_ANSWER[20:72][4:] in request


@given(st.binary(max_size=600))
def test_any_bytes_never_raise(data: bytes) -> None:
    for flow in flows(data):
        assert isinstance(flow, Flow)
    answer(data)


@given(st.integers(0, len(KERNEL_ANSWER)), st.integers(0, 255), st.integers(16, 267))
def test_damaged_kernel_messages_never_raise(cut: int, value: int, where: int) -> None:
    damaged = bytearray(KERNEL_ANSWER)
    damaged[4:6] = (0x100).to_bytes(2, "little")
    damaged[where] = value
    flows(bytes(damaged[:cut]))
    flows(bytes(damaged))


def test_with_our_mark_only_our_flows_and_the_updates_that_end_them_are_read() -> None:
    ours = (0x52520000, 0xFFFF0000)
    ended = bytearray(KERNEL_ANSWER)  # TIME_WAIT, mark 0x52520007
    ended[4:6] = (0x100).to_bytes(2, "little")
    assert len(flows(bytes(ended), ours)) == 1
    # Not ours: the mark's high half differs.
    other = bytearray(ended)
    mark_at = bytes(ended).index(bytes.fromhex("52520007"))
    other[mark_at : mark_at + 2] = b"\x12\x34"
    assert flows(bytes(other), ours) == [] and len(flows(bytes(other))) == 1
    # Ours, an update that does not end it (ESTABLISHED): not read; its NEW is.
    state_at = bytes(ended).index(bytes.fromhex("0500010007"))  # CTA_PROTOINFO_TCP_STATE
    established = bytearray(ended)
    established[state_at + 4] = 3
    assert flows(bytes(established), ours) == []
    new = bytearray(established)
    new[6:8] = (0x600).to_bytes(2, "little")
    assert [flow.kind for flow in flows(bytes(new), ours)] == [NEW]
