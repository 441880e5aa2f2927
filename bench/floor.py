"""The floor for Python: the least code that forwards short TCP connections on loopback.

Not a forwarder to use (no access control, no log, no back-pressure, no
reload, errors end the connection): it makes the same system calls per
connection as rinetd-run (accept, TCP_NODELAY, a non-blocking connect, one
edge-triggered epoll registration per socket, recv/send, shutdown, close) and
nothing else, so the churn bench can show how much of rinetd-run's cost per
connection any CPython program pays, and how much is rinetd-run's own.

    python bench/floor.py LISTEN_PORT BACKEND_PORT     (both on 127.0.0.1)
"""

from __future__ import annotations

import select
import socket
import sys

EDGE = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
SIZE = 256 * 1024


class Side:
    __slots__ = ("connected", "eof", "peer", "sock", "waiting")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.peer: Side | None = None
        self.eof = False
        self.connected = False
        self.waiting = b""


def main() -> None:
    listen_port, backend_port = int(sys.argv[1]), int(sys.argv[2])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", listen_port))
    listener.listen(1024)
    listener.setblocking(False)
    epoll = select.epoll()
    epoll.register(listener.fileno(), select.EPOLLIN)
    buffer = bytearray(SIZE)
    view = memoryview(buffer)
    sides: dict[int, Side] = {}

    def end(side: Side) -> None:
        for each in (side, side.peer):
            if each is not None and each.sock.fileno() >= 0:
                sides.pop(each.sock.fileno(), None)
                each.sock.close()

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except BlockingIOError:
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            backend = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            backend.connect_ex(("127.0.0.1", backend_port))
            near, far = Side(client), Side(backend)
            near.connected, near.peer, far.peer = True, far, near
            for side in (near, far):
                sides[side.sock.fileno()] = side
                epoll.register(side.sock.fileno(), EDGE)

    def ready(side: Side, mask: int) -> None:
        peer = side.peer
        assert peer is not None
        if mask & select.EPOLLOUT and not side.connected:
            side.connected = True
            if side.waiting:
                side.sock.send(side.waiting)
        if not mask & (select.EPOLLIN | select.EPOLLRDHUP):
            return
        while True:
            try:
                count = side.sock.recv_into(buffer)
            except BlockingIOError:
                return
            if not count:
                side.eof = True
                if peer.eof:
                    end(side)
                else:
                    peer.sock.shutdown(socket.SHUT_WR)
                return
            if peer.connected:
                peer.sock.send(view[:count])
            else:
                peer.waiting += view[:count]
            if count < SIZE and not mask & select.EPOLLRDHUP:
                return

    while True:
        for fd, mask in epoll.poll():
            if fd == listener.fileno():
                accept()
                continue
            side = sides.get(fd)
            if side is not None:
                try:
                    ready(side, mask)
                except OSError:
                    end(side)


if __name__ == "__main__":
    main()
