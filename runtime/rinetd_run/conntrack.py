"""The kernel data plane's log: conntrack's events read from netlink on the event loop,
turned into log lines by ``kernel_log``, and the counts of a flow that ended asked of
the kernel.  Standard library only (``AF_NETLINK``).

Events for every flow of the host arrive; those without our mark are dropped after
reading their attributes.  A reading takes at most ``BATCH`` datagrams, so a flood of
events cannot hold the loop.  When the kernel finds the socket's buffer full it drops
events and says so (ENOBUFS); how many it dropped is read from /proc/net/netlink,
counted in ``lost``, and said on stderr (once, then again only when more are lost
after a minute).  The flows those events told of get no line, or only one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import itertools
import os
import socket
import struct
import time
from collections.abc import Callable

from .conntrack_filter import program
from .conntrack_messages import GROUPS, Flow, answer, counters_request, flows
from .kernel_log import KernelLog
from .kernel_table import MARK, MASK
from .logline import Event
from .say import say

__all__ = ["ConntrackLog"]

NETLINK_NETFILTER = 12
BUFFER = 8 << 20  # bytes of events the kernel may queue for us
BATCH = 256  # datagrams read per wake-up
SO_RCVBUFFORCE = 33  # not in the socket module's names
_OURS = (MARK, MASK)
ASK_AT_CLOSE = 10_000  # ~50 us each
_SAY_AGAIN = 60.0  # seconds before more lost events are said again


def _drops(inode: int) -> int | None:
    """The kernel's count of messages it dropped for our socket (/proc/net/netlink)."""
    try:
        with open("/proc/net/netlink") as table:
            for line in table:
                fields = line.split()
                if len(fields) >= 10 and fields[9] == str(inode):
                    return int(fields[8])
    except (OSError, ValueError):
        return None
    return None


SO_ATTACH_FILTER = 26


def _only_ours(sock: socket.socket) -> None:
    """The kernel keeps from ``sock`` every event the log would not read (see
    ``conntrack_filter``)."""
    count, code = program(*_OURS)
    instructions = ctypes.create_string_buffer(code, len(code))
    sock_fprog = struct.pack("HP", count, ctypes.addressof(instructions))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, sock_fprog)


def _netlink() -> socket.socket:
    kind = socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
    return socket.socket(socket.AF_NETLINK, kind, NETLINK_NETFILTER)


class ConntrackLog:
    """Subscribed to conntrack's events while open; ``log`` takes the lines."""

    def __init__(self, kernel_log: KernelLog, log: Callable[[Event], None]) -> None:
        self.kernel_log = kernel_log
        self.log = log
        self.lost = 0  # events the kernel dropped for us
        self._said_at = -_SAY_AGAIN
        self._sequence = itertools.count(1)
        self._loop = asyncio.get_running_loop()
        self._events = _netlink()
        self._asker = _netlink()
        try:
            try:  # past rmem_max: we hold CAP_NET_ADMIN, as the table needs
                self._events.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER)
            except PermissionError:
                self._events.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
            _only_ours(self._events)
            self._events.bind((0, GROUPS))
            self._asker.bind((0, 0))
        except OSError:
            self._events.close()
            self._asker.close()
            raise
        self._inode = os.fstat(self._events.fileno()).st_ino
        self._loop.add_reader(self._events.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(BATCH):
            try:
                data = self._events.recv(65536)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                self._overrun()
                continue
            for flow in flows(data, _OURS):
                self._take(flow)

    def _take(self, flow: Flow) -> None:
        step = self.kernel_log.seen(flow)
        if step.log is not None:
            self.log(step.log)
        if step.ask is not None:
            event = self.kernel_log.counted(step.ask, self.ask(step.ask))
            if event is not None:
                self.log(event)

    def ask(self, flow: Flow) -> Flow | None:
        """``flow``'s entry as the kernel has it now, with its counts; None if it is gone.
        Netlink answers within the send, so the reply is read without waiting."""
        try:
            self._asker.send(counters_request(flow, next(self._sequence)))
            return answer(self._asker.recv(65536))
        except OSError:  # gone (the answer is an error, or nothing), or no room
            return None

    def _overrun(self) -> None:
        dropped = _drops(self._inode)
        self.lost = dropped if dropped is not None else self.lost + 1
        now = time.monotonic()
        if now - self._said_at >= _SAY_AGAIN:
            self._said_at = now
            say(
                f"conntrack events lost: {self.lost} so far (the kernel found our buffer "
                "full); connections they told of have no log line or only one"
            )

    def close(self) -> None:
        """Every flow still open logged as ended by the stop (counted for the first
        ``ASK_AT_CLOSE``: a stop must not take long); the sockets closed."""
        for index, flow in enumerate(self.kernel_log.still_open()):
            counted = self.ask(flow) if index < ASK_AT_CLOSE else None
            event = self.kernel_log.stopped(flow, counted)
            if event is not None:
                self.log(event)
        with contextlib.suppress(ValueError, RuntimeError):
            self._loop.remove_reader(self._events.fileno())
        self._events.close()
        self._asker.close()
