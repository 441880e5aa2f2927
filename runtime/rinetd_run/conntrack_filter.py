"""A classic BPF program for the conntrack event socket: the kernel hands rinetd-run only
the events its log reads (a flow with our mark: its NEW, its DESTROY, and the update
that ends it as TCP), so the others cost no system call and no buffer space.  Pure:
the program's bytes, for ``SO_ATTACH_FILTER``.

It walks a message's attributes as ``conntrack_messages`` does, unrolled (classic BPF
has no loops), for at most ``ATTRIBUTES`` of them; a message it cannot judge (more
attributes, an attribute longer than 255 bytes) is kept, for the reader to judge.
A load past the end of the message makes the kernel drop it: messages the kernel
writes are whole, and the reader refuses the others anyway.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ATTRIBUTES", "program"]

ATTRIBUTES = 16

# Classic BPF opcodes (linux/filter.h).
_LD_W_ABS, _LD_B_ABS, _LD_W_IND, _LD_B_IND, _LD_LEN = 0x20, 0x30, 0x40, 0x50, 0x80
_LD_IMM, _LD_MEM, _ST, _TAX = 0x00, 0x60, 0x02, 0x07
_ADD_K, _ADD_X, _SUB_K, _AND_K = 0x04, 0x0C, 0x14, 0x54
_JA, _JEQ_K, _JGE_K, _JGE_X, _JSET_K = 0x05, 0x15, 0x35, 0x3D, 0x45
_RET_K = 0x06

_FIRST = 20  # netlink header (16) and nfgenmsg (4)
_MARK_TYPE, _PROTOINFO_TYPE = 8, 4
_TIME_WAIT, _CLOSE = 7, 8
_LENGTH, _OURS, _STATE = 0, 1, 2  # scratch memory: attribute length, mark seen, TCP state


@dataclass
class _Op:
    code: int
    k: int = 0
    true: str | None = None  # label to jump to (conditional jumps; ``ja`` uses ``true``)
    false: str | None = None  # None: the next instruction


class _Program:
    def __init__(self) -> None:
        self.ops: list[_Op | str] = []  # a str is a label

    def op(self, code: int, k: int = 0, true: str | None = None, false: str | None = None) -> None:
        self.ops.append(_Op(code, k, true, false))

    def label(self, name: str) -> None:
        self.ops.append(name)

    def assemble(self) -> bytes:
        where: dict[str, int] = {}
        count = 0
        for item in self.ops:
            if isinstance(item, str):
                where[item] = count
            else:
                count += 1
        out, index = [], 0
        for item in self.ops:
            if isinstance(item, str):
                continue
            after = index + 1

            def offset(label: str | None, after: int = after) -> int:
                return 0 if label is None else where[label] - after

            if item.code == _JA:
                out.append(struct.pack("=HBBI", item.code, 0, 0, offset(item.true)))
            else:
                jt, jf = offset(item.true), offset(item.false)
                assert 0 <= jt <= 255 and 0 <= jf <= 255, (jt, jf)
                out.append(struct.pack("=HBBI", item.code, jt, jf, item.k))
            index += 1
        return b"".join(out)


def _attribute(p: _Program, n: int, mark: int, mask: int) -> None:
    """The n-th attribute at offset X: remember our mark and a TCP state, then X moves on."""
    body, seen_mark, seen_protoinfo, advance = f"body{n}", f"mark{n}", f"info{n}", f"next{n}"
    p.label(f"attribute{n}")
    p.op(_LD_LEN)
    p.op(_SUB_K, 4)
    p.op(_JGE_X, true=body)  # an attribute's header fits: read it
    p.op(_JA, true="judge")  # no more attributes
    p.label(body)
    p.op(_LD_B_IND, 1)  # the length's high byte
    p.op(_JEQ_K, 0, false=f"keep{n}")  # 256 bytes or more: the reader judges
    p.op(_LD_B_IND, 0)
    p.op(_ST, _LENGTH)
    p.op(_JGE_K, 4, false=f"drop{n}")  # shorter than its header: malformed
    p.op(_LD_B_IND, 2)  # its type (ours are below 256; the high byte holds flags)
    p.op(_JEQ_K, _MARK_TYPE, true=seen_mark)
    p.op(_JEQ_K, _PROTOINFO_TYPE, true=seen_protoinfo, false=advance)
    p.label(seen_mark)
    p.op(_LD_W_IND, 4)  # the mark, big-endian as BPF reads words
    p.op(_AND_K, mask)
    p.op(_JEQ_K, mark, false=f"drop{n}")
    p.op(_LD_IMM, 1)
    p.op(_ST, _OURS)
    p.op(_JA, true=advance)
    p.label(seen_protoinfo)
    p.op(_LD_B_IND, 6)  # the first nested attribute: CTA_PROTOINFO_TCP (1)?
    p.op(_JEQ_K, 1, false=advance)
    p.op(_LD_B_IND, 10)  # and in it, CTA_PROTOINFO_TCP_STATE (1)?
    p.op(_JEQ_K, 1, false=advance)
    p.op(_LD_B_IND, 12)
    p.op(_ST, _STATE)
    p.label(advance)
    p.op(_LD_MEM, _LENGTH)
    p.op(_ADD_K, 3)
    p.op(_AND_K, 0xFC)
    p.op(_ADD_X)
    p.op(_TAX)
    # Conditional jumps reach 255 instructions at most: the far ends, from here.
    p.op(_JA, true=f"attribute{n + 1}")
    p.label(f"drop{n}")
    p.op(_JA, true="drop")
    p.label(f"keep{n}")
    p.op(_JA, true="keep")


def program(mark: int, mask: int, attributes: int = ATTRIBUTES) -> tuple[int, bytes]:
    """(instruction count, instructions) of the filter for flows whose mark & mask ==
    mark."""
    p = _Program()
    p.op(_LD_IMM, 0)
    p.op(_ST, _OURS)
    p.op(_ST, _STATE)
    p.op(0x01, _FIRST)  # ldx #20: the first attribute
    for n in range(attributes):
        _attribute(p, n, mark, mask)
    p.label(f"attribute{attributes}")
    p.op(_LD_LEN)  # attributes left that were not looked at: the reader judges
    p.op(_SUB_K, 4)
    p.op(_JGE_X, true="keep", false="judge")
    p.label("judge")
    p.op(_LD_MEM, _OURS)
    p.op(_JEQ_K, 1, false="drop")
    p.op(_LD_B_ABS, 4)  # the message type: 2 is a DESTROY
    p.op(_JEQ_K, 2, true="keep")
    p.op(_LD_B_ABS, 7)  # the flags' high byte: NLM_F_CREATE (0x400) marks a NEW
    p.op(_JSET_K, 0x04, true="keep")
    p.op(_LD_MEM, _STATE)  # an update: only the end of a TCP flow
    p.op(_JEQ_K, _TIME_WAIT, true="keep")
    p.op(_JEQ_K, _CLOSE, true="keep", false="drop")
    p.label("drop")
    p.op(_RET_K, 0)
    p.label("keep")
    p.op(_RET_K, 0xFFFFFFFF)
    code = p.assemble()
    return len(code) // 8, code
