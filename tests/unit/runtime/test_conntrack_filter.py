"""``conntrack_filter``: the classic BPF program run here by a small interpreter of the
few opcodes it uses (the kernel runs it in test_kernel_log.py), on the kernel's own
message and edits of it: what it keeps and what it drops."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rinetd_run.conntrack_filter import program
from tests.unit.runtime.test_conntrack_messages import KERNEL_ANSWER

OURS = (0x52520000, 0xFFFF0000)


class _OutOfBounds(Exception):
    pass


def _run(code: bytes, packet: bytes) -> int:
    """Classic BPF as the kernel runs it: a load past the end returns 0 (drop)."""
    ops = [struct.unpack_from("=HBBI", code, at) for at in range(0, len(code), 8)]
    a = x = 0
    memory = [0] * 16
    pc = 0

    def load(offset: int, size: int) -> int:
        if offset < 0 or offset + size > len(packet):
            raise _OutOfBounds
        return int.from_bytes(packet[offset : offset + size], "big")

    try:
        while True:
            code_, jt, jf, k = ops[pc]
            pc += 1
            if code_ == 0x06:
                return k
            if code_ == 0x00:
                a = k
            elif code_ == 0x01:
                x = k
            elif code_ == 0x20:
                a = load(k, 4)
            elif code_ == 0x30:
                a = load(k, 1)
            elif code_ == 0x40:
                a = load(x + k, 4)
            elif code_ == 0x50:
                a = load(x + k, 1)
            elif code_ == 0x80:
                a = len(packet)
            elif code_ == 0x60:
                a = memory[k]
            elif code_ == 0x02:
                memory[k] = a
            elif code_ == 0x07:
                x = a
            elif code_ == 0x04:
                a = (a + k) & 0xFFFFFFFF
            elif code_ == 0x0C:
                a = (a + x) & 0xFFFFFFFF
            elif code_ == 0x14:
                a = (a - k) & 0xFFFFFFFF
            elif code_ == 0x54:
                a &= k
            elif code_ == 0x05:
                pc += k
            elif code_ in (0x15, 0x35, 0x3D, 0x45):
                taken = {
                    0x15: a == k,
                    0x35: a >= k,
                    0x3D: a >= x,
                    0x45: bool(a & k),
                }[code_]
                pc += jt if taken else jf
            else:
                raise AssertionError(f"opcode {code_:#x} not interpreted")
    except _OutOfBounds:
        return 0


def _kept(packet: bytes) -> bool:
    _count, code = program(*OURS)
    return _run(code, packet) != 0


def _as(kind: int, flags: int) -> bytearray:
    message = bytearray(KERNEL_ANSWER)
    message[4:6] = kind.to_bytes(2, "little")
    message[6:8] = flags.to_bytes(2, "little")
    return message


STATE_AT = KERNEL_ANSWER.index(bytes.fromhex("0500010007")) + 4  # CTA_PROTOINFO_TCP_STATE
MARK_AT = KERNEL_ANSWER.index(bytes.fromhex("52520007"))


@pytest.mark.parametrize(
    ("kind", "flags", "state", "kept"),
    [
        (0x100, 0x600, 3, True),  # NEW (flags create|excl), whatever its state
        (0x102, 0x000, 3, True),  # DESTROY
        (0x100, 0x000, 7, True),  # an update to TIME_WAIT: the end of the flow
        (0x100, 0x000, 8, True),  # to CLOSE (a reset)
        (0x100, 0x000, 3, False),  # ESTABLISHED: not read
        (0x100, 0x000, 4, False),  # FIN_WAIT
        (0x100, 0x000, 1, False),  # SYN_SENT
    ],
)
def test_our_flows_new_destroy_and_their_ends_are_kept(
    kind: int, flags: int, state: int, kept: bool
) -> None:
    message = _as(kind, flags)
    message[STATE_AT] = state
    assert _kept(bytes(message)) is kept


def test_flows_without_our_mark_are_dropped() -> None:
    for high in (b"\x00\x00", b"\x12\x34", b"\x52\x53"):
        message = _as(0x100, 0x600)
        message[MARK_AT : MARK_AT + 2] = high
        assert not _kept(bytes(message))
    # No mark at all (conntrack leaves out a zero mark): dropped.
    without = bytearray(KERNEL_ANSWER[: MARK_AT - 4]) + KERNEL_ANSWER[MARK_AT + 4 :]
    without[0:4] = len(without).to_bytes(4, "little")
    assert not _kept(bytes(without))


def test_a_message_with_more_attributes_than_it_walks_is_left_to_the_reader() -> None:
    padding = b"".join(struct.pack("=HH", 8, 30) + b"\0\0\0\0" for _ in range(20))
    message = bytearray(KERNEL_ANSWER[:20]) + padding + KERNEL_ANSWER[20:]
    message[0:4] = len(message).to_bytes(4, "little")
    message[4:6] = (0x100).to_bytes(2, "little")
    message[STATE_AT + len(padding)] = 3  # an update the filter would drop, if it saw it
    assert _kept(bytes(message))


@given(st.binary(max_size=400))
def test_any_bytes_end_with_a_verdict(data: bytes) -> None:
    _count, code = program(*OURS)
    assert _run(code, data) in (0, 0xFFFFFFFF)


def test_the_program_fits_the_kernel_s_limit() -> None:
    count, code = program(*OURS)
    assert count == len(code) // 8 <= 4096
